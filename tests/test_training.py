"""The trainer: batch plans, seeded per-item augmentation, resume equal to an uninterrupted run for every deep method,
the non-finite loss stop, constant codes, devices, and the papers' transforms per backbone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hashbench import transforms
from hashbench.errors import HashbenchError
from hashbench.methods import DatasetInfo, TrainSet, get_method
from hashbench.networks import Backbone
from hashbench.pipeline import check_codes
from hashbench.training import ClassBalanced, Cycled, Field, Runtime, Shuffled
from hashbench.training.loaders import ArrayRows, Items, item_seeds, loader, map_batches
from hashbench.training.runtime import resolve_device, resolve_precision

IMAGES = DatasetInfo("mnist5k", (16, 16, 1), 10, frozenset({"image"}))
TAGS = DatasetInfo("mnist5k-tags", (16, 16, 1), 10, frozenset({"image", "tags", "text"}), text_dim=6)


def tiny(n=40, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 16, 16, 1), dtype=np.uint8)
    labels = np.eye(10, dtype=np.uint8)[np.arange(n) % 10]
    labels[::3, (np.arange(n)[::3] + 5) % 10] = 1
    return images, labels, rng


def case(name):
    """(info, params, train set) of a tiny run of `name` with a few epochs (several steps each)."""
    images, labels, rng = tiny()
    if name == "wsdhq":
        targets = (rng.random((40, 5)) < 0.4).astype(np.float32)
        emb = rng.standard_normal((5, 8)).astype(np.float32)
        # 5 steps an epoch and codebooks refreshed every epoch: the resume starts mid-epoch with codebooks set
        return TAGS, {"epochs": 4, "batch_size": 8, "lr_step": 4, "update_every_epochs": 1}, \
            TrainSet(images, tag_targets=targets, tag_embeddings=emb)
    if name == "djsrh":
        texts = (rng.random((40, 6)) < 0.3).astype(np.float32)
        return TAGS, {"epochs": 3, "batch_size": 8, "text_hidden": 16}, TrainSet(images, texts=texts)
    if name == "gpq":
        unlabeled = rng.integers(0, 256, (30, 16, 16, 1), dtype=np.uint8)
        return IMAGES, {"iterations": 9, "labeled_batch": 10, "unlabeled_batch": 10}, \
            TrainSet(images, labels=labels, unlabeled_images=unlabeled)
    params = {"dnnh": {"epochs": 3, "classes_per_batch": 4, "images_per_class": 2},
              "hyp2": {"epochs": 3, "batch_size": 12}}[name]
    return IMAGES, params, TrainSet(images, labels=labels)


# ------------------------------------------------------------------------------------------------- batch plans
def test_shuffled_splits_like_distributed_sampler_and_keeps_the_last_batch_rules():
    plan = Shuffled(10, 4)
    assert [len(b) for b in plan.batches((0, 0), 0, range(3), 0, 1)] == [4, 4, 2]
    assert plan.steps(1) == 3 and Shuffled(10, 4, drop_last=True).steps(1) == 2
    assert [len(b) for b in Shuffled(9, 4, merge_lone=True).batches((0, 0), 0, range(2), 0, 1)] == [4, 5]
    a, b = (Shuffled(9, 2).batches((0, 0), 3, range(3), r, 2) for r in (0, 1))
    both = np.concatenate(a + b)
    assert len(both) == 10 and set(both) == set(range(9))  # padded to a multiple of 2 with a repeat
    assert not np.array_equal(np.concatenate(Shuffled(10, 4).batches((0, 0), 0, range(3), 0, 1)),
                              np.concatenate(Shuffled(10, 4).batches((0, 0), 1, range(3), 0, 1)))


def test_cycled_passes_drop_the_short_batch_and_steps_address_batches():
    plan = Cycled(10, 3)
    first = plan.batches((1, 0), 0, range(6), 0, 1)
    assert plan.per_pass == 3 and all(len(b) == 3 for b in first)
    assert len(set(np.concatenate(first[:3]))) == 9  # one pass: without replacement, the tenth item left out
    again = plan.batches((1, 0), 1, range(4, 6), 0, 1)
    assert all(np.array_equal(x, y) for x, y in zip(again, first[4:6]))  # any step, any time: the same batch
    world = [Cycled(10, 3).batches((1, 0), 0, range(1), r, 3)[0] for r in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(world, first[:3]))


def test_class_balanced_plan():
    labels = np.eye(5, dtype=np.uint8)[np.arange(40) % 5]
    plan = ClassBalanced(labels, 2, 4)
    batches = plan.batches((0, 0), 0, range(plan.steps(1)), 0, 1)
    assert len(batches) == 5 and all(len(np.unique(labels[b].argmax(1))) == 2 for b in batches)


def test_augmentation_is_seeded_per_item_whatever_the_workers():
    images, _, _ = tiny(24)
    spec = Backbone("smallcnn", (16, 16, 1)).spec
    items = Items({"image": Field(images, transforms.build("hyp2", "shift", spec, (16, 16, 1), True, shift=3))})
    keys = [list(zip(b.tolist(), item_seeds((5, 0), s, 0, len(b)).tolist()))
            for s, b in enumerate(Shuffled(24, 8).batches((5, 0), 0, range(3), 0, 1))]
    runs = []
    for workers in (0, 2):
        data = loader(items, workers, pin_memory=False)
        data.batch_sampler.batches = keys
        runs.append([batch["image"] for batch in data])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    assert not torch.equal(runs[0][0], items.__getitems__([(k[0], k[1] + 1) for k in keys[0]])[0]["image"][None])
    state = torch.get_rng_state()
    items.__getitems__(keys[0])
    assert torch.equal(state, torch.get_rng_state())  # the training process's generator is left as it was


# ---------------------------------------------------------------------------------------------------- resume
class _Stop(Exception):
    pass


def _stop_after(epoch):
    def log(row, speed):
        if row["epoch"] == epoch:
            raise _Stop
    return log


@pytest.mark.parametrize("name", ["dnnh", "hyp2", "gpq", "wsdhq", "djsrh"])
def test_resume_equals_an_uninterrupted_run(name, tmp_path):
    """Stopped after its second epoch (the last checkpoint lies mid-epoch: every 3 steps), started again: the
    history and every saved tensor equal an uninterrupted run's, bit for bit."""
    info, params, train = case(name)

    def run(folder, log=None):
        method = get_method(name)(16, 3, params, info)
        method.runtime = Runtime(checkpoints=tmp_path / folder, checkpoint_every=3, progress=False, log=log)
        return method, method.fit(train)

    full, history = run("a")
    with pytest.raises(_Stop):
        run("b", log=_stop_after(1))
    assert list((tmp_path / "b").glob("*/last.pt"))
    resumed, again = run("b")
    assert resumed.trainer.resumed_from is not None and resumed.trainer.resumed_from["epoch"] == 1
    assert resumed.trainer.resumed_from["batch"] > 0                        # mid-epoch
    assert again == history
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert list((tmp_path / "b").glob("*/last.pt"))  # kept until the stage has written the model
    resumed.trainer.discard_checkpoint()
    assert not list((tmp_path / "b").glob("*/last.pt"))


def test_checkpoints_of_other_params_are_not_used(tmp_path):
    info, params, train = case("hyp2")
    method = get_method("hyp2")(16, 3, params, info)
    method.runtime = Runtime(checkpoints=tmp_path, progress=False, log=_stop_after(1))
    with pytest.raises(_Stop):
        method.fit(train)
    other = get_method("hyp2")(16, 3, {**params, "lr": 0.02}, info)
    other.runtime = Runtime(checkpoints=tmp_path, progress=False)
    other.fit(train)
    assert other.trainer.resumed_from is None and len(list(tmp_path.glob("*/last.pt"))) == 2
    other.trainer.discard_checkpoint()
    assert len(list(tmp_path.glob("*/last.pt"))) == 1  # the stopped run's own, under its own key


# ---------------------------------------------------------------------------------------------- divergence
def test_non_finite_loss_stops_with_one_line(tmp_path):
    info, params, train = case("hyp2")
    method = get_method("hyp2")(16, 0, {**params, "lr": 1e6}, info)
    method.runtime = Runtime(checkpoints=tmp_path, progress=False)
    with pytest.raises(HashbenchError) as err:
        method.fit(train)
    message = str(err.value)
    assert "\n" not in message and message.startswith("hyp2: the loss is nan at epoch ") and ", batch " in message
    assert not list(tmp_path.glob("*/last.pt"))


class _MissingFiles(ArrayRows):
    """Rows whose files are gone, as a placed dataset with a deleted image."""

    def rows(self, positions):
        raise HashbenchError(f"data/raw/images/{positions[0]}.jpg: the file is missing; place the dataset again")


@pytest.mark.parametrize("workers", [0, 2])
def test_an_error_in_a_data_worker_is_its_own_line(workers):
    with pytest.raises(HashbenchError) as err:
        map_batches(lambda x: x.float(), _MissingFiles(np.zeros((16, 4))), None, 8, 4, workers=workers)
    assert str(err.value) == "data/raw/images/0.jpg: the file is missing; place the dataset again"


def test_constant_codes_are_refused():
    check_codes("database/image", np.array([[1, -1], [1, 1]], np.int8))
    with pytest.raises(HashbenchError, match=r"^database/image: all 3 items got the same code"):
        check_codes("database/image", np.tile(np.array([[1, -1, 1]], np.int8), (3, 1)))
    info, params, train = case("hyp2")
    method = get_method("hyp2")(16, 0, params, info)
    torch.nn.init.zeros_(method.net[1].weight)  # every image -> the hash layer's bias
    with pytest.raises(HashbenchError, match="same code"):
        check_codes("database/image", method.encode(train.images))


# ---------------------------------------------------------------------------------------------------- devices
def test_device_and_precision_choices():
    assert resolve_device("cpu") == torch.device("cpu") and resolve_precision("auto", torch.device("cpu")) == "fp32"
    with pytest.raises(HashbenchError, match=r"^device: 'gpu' is not allowed; use auto, cpu, cuda or cuda:N$"):
        resolve_device("gpu")
    with pytest.raises(HashbenchError, match=r"^precision: 'fp16' is not allowed on the CPU"):
        resolve_precision("fp16", torch.device("cpu"))
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        for value in ("cuda", "cuda:1"):
            with pytest.raises(HashbenchError) as err:
                resolve_device(value)
            assert str(err.value).startswith(f"device: '{value}' is not allowed here: PyTorch sees no CUDA GPU")


# ------------------------------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("method, backbone, size, train_shape, test_shape", [
    ("hyp2", "alexnet", 224, (3, 224, 224), (3, 224, 224)),
    ("hyp2", "inception_v3", 448, (3, 448, 448), (3, 448, 448)),
    ("djsrh", "alexnet", 224, (3, 224, 224), (3, 224, 224)),
    ("dnnh", "resnet18", 224, (3, 224, 224), (3, 224, 224)),
    ("wsdhq", "alexnet", 227, (3, 227, 227), (10, 3, 227, 227)),
    ("gpq", "gpqnet", None, (3, 32, 32), (3, 32, 32)),
])
def test_paper_transforms_per_backbone(method, backbone, size, train_shape, test_shape):
    """The official recipes on a 500x375 photo: crops / resizes to the network's size; flips in training only."""
    from PIL import Image

    shape = (32, 32, 3) if backbone == "gpqnet" else (256, 256, 3)
    spec = Backbone(backbone, shape, pretrained=False, input_size=size or 224).spec
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (375, 500, 3), dtype=np.uint8))
    if backbone == "gpqnet":
        photo = photo.resize((32, 32))
    train = transforms.build(method, "paper", spec, shape, train=True)
    test = transforms.build(method, "paper", spec, shape, train=False)
    assert tuple(train(photo).shape) == train_shape and tuple(test(photo).shape) == test_shape
    names = [type(t).__name__ for t in train.transforms]
    assert "RandomHorizontalFlip" in names and not any("Random" in type(t).__name__ for t in test.transforms)
    assert torch.equal(test(photo), test(photo))


def test_wsdhq_ten_crops_are_the_official_offsets():
    x = torch.arange(256 * 256, dtype=torch.float32).view(1, 256, 256)
    views = transforms.TenCrop((227, 227))(x)
    corners = [(0, 0), (28, 28), (28, 0), (0, 28), (14, 14)]
    assert views.shape == (10, 1, 227, 227)
    assert [int(v[0, 0, 0]) for v in views[:5]] == [256 * r + c for r, c in corners]
    assert torch.equal(views[5], views[0].flip(-1))


def test_shift_on_digits_and_auto():
    assert transforms.resolve("auto", "mnist5k-tags") == "shift" and transforms.resolve("auto", "voc2007") == "paper"
    spec = Backbone("smallcnn", (56, 56, 1), downsample=2).spec
    digit = torch.zeros((1, 56, 56), dtype=torch.uint8)
    digit[0, 20:30, 20:30] = 255
    moved = [transforms.build("wsdhq", "shift", spec, (56, 56, 1), True, shift=2)(digit) for _ in range(20)]
    assert all(m.shape == (1, 28, 28) for m in moved) and len({m.argmax().item() for m in moved}) > 1
    names = [type(t).__name__ for t in transforms.build("wsdhq", "shift", spec, (56, 56, 1), True, 2).transforms]
    assert "RandomHorizontalFlip" not in names and names.index("AvgPool") < names.index("RandomCrop")
    with pytest.raises(HashbenchError, match="augment: 'paper' is not allowed for lsh"):
        transforms.build("lsh", "paper", spec, (56, 56, 1), True)


def test_paper_test_trains_on_the_official_test_view():
    """DJSRH's Wiki recipe: Resize 256 + CenterCrop 224 for training too; refused where the test view is 10 crops."""
    spec = Backbone("alexnet", (256, 256, 3), pretrained=False).spec
    train = transforms.build("djsrh", "paper_test", spec, (256, 256, 3), train=True)
    test = transforms.build("djsrh", "paper", spec, (256, 256, 3), train=False)
    assert transforms.describe(train) == transforms.describe(test)
    assert transforms.resolve("paper_test", "wikipedia") == "paper_test"
    with pytest.raises(HashbenchError, match="augment: 'paper_test' is not allowed for wsdhq"):
        transforms.build("wsdhq", "paper_test", Backbone("alexnet", (256, 256, 3), pretrained=False,
                                                         input_size=227).spec, (256, 256, 3), True)


@pytest.mark.parametrize("name", ["dnnh", "hyp2", "gpq", "wsdhq", "djsrh"])
def test_mixed_precision_path(name):
    """The CUDA default (networks under autocast, losses in float32) exercised on the CPU with bfloat16: finite
    losses, float32 codes and features."""
    info, params, train = case(name)
    method = get_method(name)(16, 0, {**params, "epochs": 1} if "epochs" in params else params, info)
    method.runtime = Runtime(precision="bf16", progress=False)
    history = method.fit(train)
    assert all(np.isfinite(row["loss"]) for row in history)
    codes = method.encode(train.images, role="query")
    assert codes.dtype in (np.int8, np.float32) and len(codes) == len(train)
