"""HyP²: the loss against a literal per-entry computation, the zeta table, and the method's contract."""
import math

import numpy as np
import pytest
import torch

from hashbench.errors import HashbenchError
from hashbench.losses.hyp2 import HyP2Loss, zeta_for
from hashbench.methods import DatasetInfo, TrainSet, get_method

IMAGE_ONLY = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))
TINY = {"epochs": 2, "batch_size": 16}


def literal_loss(x, proxies, y, zeta, beta):
    """The HyP² loss written entry by entry, as the paper defines it."""
    def cos(a, b):
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    pos, neg = [], []
    for i in range(len(x)):
        for c in range(len(proxies)):
            s = cos(x[i], proxies[c])
            if y[i, c]:
                pos.append(1 - s)
            else:
                neg.append(max(0.0, s - zeta))
    total = sum(pos) / len(pos) + sum(neg) / len(neg)
    pair = [max(0.0, cos(x[i], x[j]) - zeta) for i in range(len(x)) for j in range(len(x))
            if i != j and y[i].sum() > 1 and y[j].sum() > 1 and not (y[i] & y[j]).any()]
    if pair:
        total += beta * sum(pair) / len(pair)
    return total


@pytest.mark.parametrize("zeta,beta", [(0.0, 0.5), (0.25, 0.5), (-0.3125, 2.0), (0.0, 0.0)])
def test_loss_matches_literal_definition(zeta, beta):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 6))
    y = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 1, 0], [0, 0, 0, 0]],
                 np.uint8)
    loss_fn = HyP2Loss(4, 6, zeta, beta, seed=3).double()
    got = loss_fn(torch.from_numpy(x), torch.from_numpy(y)).item()
    want = literal_loss(x, loss_fn.proxies.detach().numpy(), y, zeta, beta)
    assert got == pytest.approx(want, rel=1e-12)


def test_pair_term_only_for_multi_label_items_sharing_nothing():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [1.0, -0.1]])
    single = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1]])  # irrelevant but single-label: no pair term
    a = HyP2Loss(3, 2, 0.0, 0.0, seed=1)
    b = HyP2Loss(3, 2, 0.0, 5.0, seed=1)
    assert a(x, single).item() == b(x, single).item()
    multi = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]])  # only items 0 and 1 share nothing
    a, b = HyP2Loss(4, 2, 0.0, 0.0, seed=1), HyP2Loss(4, 2, 0.0, 5.0, seed=1)
    xn = torch.nn.functional.normalize(x, dim=1)
    assert b(x, multi).item() - a(x, multi).item() == pytest.approx(5.0 * float(xn[0] @ xn[1]), rel=1e-6)


def test_proxies_are_seeded_kaiming_fan_out():
    a, b = HyP2Loss(21, 4096, 0.0, 0.5, seed=0), HyP2Loss(21, 4096, 0.0, 0.5, seed=0)
    assert torch.equal(a.proxies, b.proxies)
    assert a.proxies.std().item() == pytest.approx(math.sqrt(2 / 21), rel=0.02)


def test_zeta_table():
    assert zeta_for(32, 10) == 0.0                      # the embedded sets
    assert zeta_for(48, 21) == 0.0 and zeta_for(36, 21) == pytest.approx(1 / 18)   # NUS-WIDE-21
    assert zeta_for(12, 38) == pytest.approx(1 / 3) and zeta_for(16, 38) == 0.25    # MIRFlickr-38
    assert zeta_for(64, 20) == 0.0 and zeta_for(64, 9) == -0.03125
    with pytest.raises(HashbenchError, match=r"^hyp2\.zeta: .*bits=20 .*set hyp2\.zeta"):
        zeta_for(20, 10)


def test_method_needs_zeta_for_untabulated_bits_and_checks_it():
    with pytest.raises(HashbenchError, match=r"^hyp2\.zeta: "):
        get_method("hyp2")(20, 0, TINY, IMAGE_ONLY)
    assert get_method("hyp2")(20, 0, {**TINY, "zeta": 0.1}, IMAGE_ONLY).zeta == 0.1
    with pytest.raises(HashbenchError, match=r"^hyp2\.zeta: 1\.5 is not allowed"):
        get_method("hyp2")(32, 0, {"zeta": 1.5}, IMAGE_ONLY)


def tiny_train(n=49, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.eye(10, dtype=np.uint8)[np.arange(n) % 10]
    labels[::3, (np.arange(n)[::3] + 5) % 10] = 1                 # a third of the images have two labels
    images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    return TrainSet(images=images, labels=labels)


def test_method_is_deterministic_survives_save_load_and_learns():
    train = tiny_train()               # 49 = 3 x 16 + 1: the lone last image joins the previous batch
    runs = []
    for _ in range(2):
        method = get_method("hyp2")(16, 7, {**TINY, "epochs": 6}, IMAGE_ONLY)
        history = method.fit(train)
        runs.append((history, method.encode(train.images), method.state_dict()))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    codes = runs[0][1]
    assert codes.dtype == np.int8 and codes.shape == (49, 16) and set(np.unique(codes)) <= {-1, 1}
    assert history[-1]["loss"] < history[0]["loss"]
    assert [h["lr"] for h in history] == [0.01] * 6      # halved only after epoch 10
    fresh = get_method("hyp2")(16, 99, TINY, IMAGE_ONLY)
    fresh.load_state_dict(runs[0][2])
    assert np.array_equal(fresh.encode(train.images, role="query"), codes)
