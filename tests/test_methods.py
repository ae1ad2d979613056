
import numpy as np
import pytest
import torch

from hashbench import networks, transforms
from hashbench.errors import HashbenchError
from hashbench.methods import REGISTRY, DatasetInfo, TrainSet, get_method
from hashbench.pipeline import dataset_info, train_set

IMAGE_ONLY = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))
TINY_DNNH = {"epochs": 2, "classes_per_batch": 4, "images_per_class": 4}


def tiny_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    labels = np.eye(10, dtype=np.uint8)[np.arange(n) % 10]
    return images, labels


def test_unknown_method_names_the_allowed_ones():
    with pytest.raises(HashbenchError, match="method: 'foo' is not allowed; use one of .*dnnh"):
        get_method("foo")


@pytest.mark.parametrize("bits", [0, -8, 2.5, True])
def test_bad_bits_rejected(bits):
    with pytest.raises(HashbenchError, match="^bits: "):
        get_method("dnnh")(bits, 0, TINY_DNNH, IMAGE_ONLY)


def test_negative_learning_rate_rejected():
    with pytest.raises(HashbenchError, match=r"^dnnh\.lr: -0\.1 is not allowed; use a number > 0$"):
        get_method("dnnh")(16, 0, {"lr": -0.1}, IMAGE_ONLY)


@pytest.mark.parametrize("name", ["dnnh", "lsh", "pcah", "itq", "sh", "pq", "opq"])
def test_image_only_methods_refuse_text(name):
    method = get_method(name)(16, 0, TINY_DNNH if name == "dnnh" else None, IMAGE_ONLY)
    with pytest.raises(HashbenchError, match="modality: 'text' is not allowed"):
        method.encode(np.zeros((2, 5), np.float32), modality="text")


def test_dnnh_is_deterministic_and_survives_save_load():
    images, labels = tiny_data()
    runs = []
    for _ in range(2):
        method = get_method("dnnh")(16, 3, TINY_DNNH, IMAGE_ONLY)
        history = method.fit(TrainSet(images, labels=labels))
        runs.append((history, method.encode(images)))
    assert runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])
    codes = runs[0][1]
    assert codes.dtype == np.int8 and codes.shape == (64, 16) and set(np.unique(codes)) <= {-1, 1}
    state = {k: v.clone() for k, v in method.state_dict().items()}
    fresh = get_method("dnnh")(16, 99, TINY_DNNH, IMAGE_ONLY)
    fresh.load_state_dict(state)
    assert np.array_equal(fresh.encode(images), runs[1][1])


def test_dnnh_training_lowers_the_loss():
    images, labels = tiny_data(n=80)
    history = get_method("dnnh")(16, 0, {**TINY_DNNH, "epochs": 8, "lr": 0.01}, IMAGE_ONLY).fit(
        TrainSet(images, labels=labels))
    assert history[-1]["loss"] < history[0]["loss"]


def test_lsh_codes_are_sign_random_projections_of_centred_pixels():
    images, _ = tiny_data()
    method = get_method("lsh")(24, 5, None, IMAGE_ONLY)
    method.fit(TrainSet(images))
    x = images.reshape(64, -1) / 255.0
    expected = np.where((x - x.mean(0)) @ method.arrays["image_projection"] >= 0, 1, -1)
    assert np.array_equal(method.encode(images), expected)


def test_train_set_holds_only_what_the_method_declares(mnist5k_tags):
    dataset, split = mnist5k_tags
    assert train_set(REGISTRY["lsh"], dataset, split).labels is None
    data = train_set(REGISTRY["dnnh"], dataset, split)
    assert data.labels is not None and data.texts is None
    assert len(data) == len(split["train"])


def test_dataset_info_reads_modalities(mnist5k, mnist5k_tags):
    assert dataset_info(mnist5k[0]).modalities == {"image"}
    info = dataset_info(mnist5k_tags[0])
    assert {"image", "text"} <= info.modalities and info.text_dim > 0 and info.image_shape == (56, 56, 1)


def test_image_path_dataset_trains_and_encodes(tmp_path):
    """A real-style set of JPEG files of different sizes: read at the dataset's image_size, trained, encoded."""
    from PIL import Image

    from hashbench.data import open_dataset, write_dataset

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    for i in range(24):
        pixels = rng.integers(0, 256, (30 + i, 40 - i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "img" / f"im{i}.jpg")
    labels = np.eye(3, dtype=np.uint8)[np.arange(24) % 3]
    write_dataset(tmp_path / "raw", name="photos", labels=labels, class_names="abc",
                  image_paths=[f"im{i}.jpg" for i in range(24)], image_root=str(tmp_path / "img"), image_size=32)
    with open_dataset(tmp_path / "raw") as dataset:
        info = dataset_info(dataset)
        assert info.image_shape == (32, 32, 3)
        split = {"train": np.arange(0, 24, 2)}
        method = get_method("dnnh")(16, 0, {**TINY_DNNH, "classes_per_batch": 3, "images_per_class": 2}, info)
        method.fit(train_set(REGISTRY["dnnh"], dataset, split))
        codes = method.encode(dataset.images(np.arange(24)))
    assert codes.shape == (24, 16)


def test_labels_only_dataset_is_refused_in_one_line(tmp_path):
    from hashbench.data import open_dataset, write_dataset

    write_dataset(tmp_path / "raw", name="nuswide", labels=np.eye(3, dtype=np.uint8), class_names="abc")
    with open_dataset(tmp_path / "raw") as dataset:
        info = dataset_info(dataset)
    with pytest.raises(HashbenchError, match=r"^method dnnh needs images, which dataset nuswide lacks here"):
        get_method("dnnh")(16, 0, TINY_DNNH, info)


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1)])
def test_gpqnet_backbone(shape):
    """GPQ's F: a pooled 256-d branch and a 512-d branch on top of it, 768-d in all; CIFAR statistics for RGB."""
    backbone = networks.Backbone("gpqnet", shape, pretrained=False).eval()
    convs = [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512]
    prepare = transforms.build("gpq", "none", backbone.spec, shape, train=False)
    x = torch.stack([prepare(torch.full(shape[::-1], 255, dtype=torch.uint8))] * 2)
    with torch.no_grad():
        assert backbone(x).shape == (2, 768)
    if shape[-1] == 3:
        assert x[0, :, 0, 0].tolist() == pytest.approx([(255 - 125.642) / 63.01, (255 - 123.738) / 62.157,
                                                         (255 - 114.46) / 66.94], rel=1e-5)


@pytest.mark.parametrize("name", ["alexnet", "resnet18", "resnet50", "vgg16", "inception_v3"])
def test_imagenet_backbones_take_grayscale_digits(name):
    """Grey digits are resized to input_size and repeated into 3 channels; features of the documented width."""
    backbone = networks.Backbone(name, (28, 28, 1), pretrained=False, input_size=80).eval()
    prepare = transforms.build("hyp2", "none", backbone.spec, (28, 28, 1), train=False)
    x = torch.stack([prepare(torch.zeros((1, 28, 28), dtype=torch.uint8))] * 2)
    assert x.shape == (2, 3, 80, 80)
    with torch.no_grad():
        features = backbone(x)
    width = {"alexnet": 4096, "vgg16": 4096, "resnet18": 512, "resnet50": 2048, "inception_v3": 2048}[name]
    assert features.shape == (2, width) == (2, backbone.feature_dim)


def test_inception_v3_trains_on_its_main_output():
    """HyP²'s VOC network: in train mode the loss sees one (N, 2048) output (no auxiliary head)."""
    backbone = networks.Backbone("inception_v3", (3, 3, 3), pretrained=False, input_size=80).train()
    out = backbone(torch.zeros(2, 3, 80, 80))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2048)
    assert not hasattr(backbone.net, "AuxLogits") or backbone.net.AuxLogits is None
    with pytest.raises(HashbenchError, match="input_size: 64 is not allowed for inception_v3"):
        networks.Backbone("inception_v3", (3, 3, 3), pretrained=False, input_size=64)
    with pytest.raises(HashbenchError, match="input_size: 62 is not allowed for alexnet; use an integer >= 63"):
        networks.Backbone("alexnet", (3, 3, 3), pretrained=False, input_size=62)
    alexnet = networks.Backbone("alexnet", (3, 3, 3), pretrained=False, input_size=63).eval()
    assert alexnet(torch.zeros(1, 3, 63, 63)).shape == (1, 4096)   # the smallest it accepts


def test_params_yaml_has_a_valid_block_for_every_method():
    from pathlib import Path

    import yaml

    from hashbench.config import validate

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    for name, method in REGISTRY.items():
        assert set(params[name]) == set(method.schema), name  # every key documented, none unknown
        validate(name, params[name], method.schema)
