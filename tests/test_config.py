import pytest

from hashbench.config import Param, validate
from hashbench.errors import HashbenchError

SCHEMA = {
    "lr": Param(0.1, float, gt=0),
    "epochs": Param(3, int, ge=1),
    "backbone": Param("smallcnn", str, choices=("smallcnn", "resnet18")),
    "margin": Param(None, float, gt=0, nullable=True),
    "flag": Param(True, bool),
}


def test_defaults_filled_and_ints_accepted_as_floats():
    out = validate("m", {"lr": 1}, SCHEMA)
    assert out == {"lr": 1.0, "epochs": 3, "backbone": "smallcnn", "margin": None, "flag": True}
    assert isinstance(out["lr"], float)


@pytest.mark.parametrize("given, message", [
    ({"lr": -0.1}, "m.lr: -0.1 is not allowed; use a number > 0"),
    ({"lr": "fast"}, "m.lr: 'fast' is not allowed; use a number > 0"),
    ({"epochs": 2.5}, "m.epochs: 2.5 is not allowed; use an integer >= 1"),
    ({"epochs": True}, "m.epochs: True is not allowed; use an integer >= 1"),
    ({"backbone": "vgg"}, "m.backbone: 'vgg' is not allowed; use one of smallcnn, resnet18"),
    ({"flag": 1}, "m.flag: 1 is not allowed; use true or false"),
    ({"lrr": 1}, "m.lrr: unknown key; allowed keys: lr, epochs, backbone, margin, flag"),
])
def test_errors_name_key_value_and_allowed(given, message):
    with pytest.raises(HashbenchError) as err:
        validate("m", given, SCHEMA)
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_nullable_and_nan():
    assert validate("m", {"margin": None}, SCHEMA)["margin"] is None
    with pytest.raises(HashbenchError, match="m.lr"):
        validate("m", {"lr": float("nan")}, SCHEMA)
