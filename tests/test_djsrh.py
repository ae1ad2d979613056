"""DJSRH: the affinity and the loss against hand-computed cases, the alpha schedule, label-free training, the
cross-modal contract (refusals included) and a tiny end-to-end fit on synthetic pairs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import LabelFreeTrainSet

from hashbench.errors import HashbenchError
from hashbench.losses.joint_semantics import (
    JointSemanticsAffinity,
    ReconstructionLoss,
    alpha_for_epoch,
    cosine_affinity,
)
from hashbench.methods import DatasetInfo, TrainSet, get_method

TAGS_INFO = DatasetInfo("mnist5k-tags", (8, 8, 1), 3, frozenset({"image", "tags", "text"}), text_dim=6)
SMALL = {"epochs": 2, "batch_size": 8, "image_network": "mlp", "downsample": 1, "image_hidden": 16,
         "text_hidden": 16, "augment_shift": 0}


def synthetic_pairs(n=48, seed=0):
    """Images and texts that both carry one of 3 'classes' (a bright quadrant / a word), plus noise."""
    rng = np.random.default_rng(seed)
    cls = rng.integers(0, 3, n)
    images = rng.integers(0, 60, (n, 8, 8, 1)).astype(np.uint8)
    texts = (rng.random((n, 6)) < 0.2).astype(np.float32)
    for i, c in enumerate(cls):
        images[i, 4 * (c % 2):4 * (c % 2) + 4, 4 * (c // 2):4 * (c // 2) + 4, 0] = 250
        texts[i, c] = 1.0
    return images, texts, np.eye(3, dtype=np.uint8)[cls]


# --------------------------------------------------------------------------------------------- affinity
def test_cosine_affinity_and_zero_row():
    f = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[1.0, 2 * r - 1, -1.0], [2 * r - 1, 1.0, -1.0], [-1.0, -1.0, -1.0]])
    assert torch.allclose(cosine_affinity(f), expected, atol=1e-6)


def test_joint_affinity_hand_computed_3x3_with_constant_divisor():
    f_i = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # cosines 0, 1/sqrt2, 1/sqrt2
    f_t = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])  # cosines 1, 0, 0
    c = 2 / math.sqrt(2) - 1  # 2 cos - 1 for cos = 1/sqrt(2)
    s_i = np.array([[1, -1, c], [-1, 1, c], [c, c, 1]])
    s_t = np.array([[1, 1, -1], [1, 1, -1], [-1, -1, 1]], dtype=float)
    beta, eta, mu, m = 0.9, 0.4, 1.5, 32
    s_mix = beta * s_i + (1 - beta) * s_t
    # second-order term by explicit sums, divided by the constant m (32), not by the batch size 3
    second = np.array([[sum(s_mix[a, k] * s_mix[b, k] for k in range(3)) for b in range(3)] for a in range(3)])
    expected = mu * ((1 - eta) * s_mix + eta * second / m)
    got = JointSemanticsAffinity(beta, eta, mu, divisor=m)(f_i, f_t)
    assert got.shape == (3, 3)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    # a batch-size divisor (3) gives a different matrix: the constant matters
    assert not np.allclose(JointSemanticsAffinity(beta, eta, mu, divisor=3)(f_i, f_t).numpy(), expected)
    # ablations: S_I only / S_T only, no second-order term, no scaling
    np.testing.assert_allclose(JointSemanticsAffinity(beta, 0.0, 1.0, m, "image")(f_i, f_t).numpy(), s_i, atol=1e-6)
    np.testing.assert_allclose(JointSemanticsAffinity(beta, 0.0, 1.0, m, "text")(f_i, f_t).numpy(), s_t, atol=1e-6)
    np.testing.assert_allclose(JointSemanticsAffinity(beta, 0.0, 1.0, m)(f_i, f_t).numpy(), s_mix, atol=1e-6)


def test_affinity_is_constant_target():
    f_i = torch.rand(4, 5, requires_grad=True)
    s = JointSemanticsAffinity(0.5, 0.4, 1.5, 32)(f_i, torch.rand(4, 3))
    assert not s.requires_grad


# ------------------------------------------------------------------------------------------------- loss
def test_reconstruction_loss_hand_computed():
    codes_i = torch.tensor([[0.5, 0.5], [0.5, -0.5]])  # normalised: [r, r], [r, -r]
    codes_t = torch.tensor([[1.0, 0.0], [0.0, -2.0]])  # normalised: [1, 0], [0, -1]
    target = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    r = 1 / math.sqrt(2)
    c_ii = np.array([[1.0, 0.0], [0.0, 1.0]])
    c_it = np.array([[r, -r], [r, r]])  # rows: images, columns: texts
    c_tt = np.array([[1.0, 0.0], [0.0, 1.0]])

    def mse(a):  # mean over all m x m entries, diagonal included
        return float(((a - target.numpy()) ** 2).sum() / 4)

    lam1, lam2 = 0.1, 0.3
    total, parts = ReconstructionLoss(lam1, lam2)(codes_i, codes_t, target)
    assert parts["ii"] == pytest.approx(mse(c_ii)) and parts["tt"] == pytest.approx(mse(c_tt))
    assert parts["it"] == pytest.approx(mse(c_it))
    assert total.item() == pytest.approx(lam1 * mse(c_ii) + mse(c_it) + lam2 * mse(c_tt), rel=1e-6)
    # lambda1 = lambda2 = 0: only the cross-modal term
    only_it, _ = ReconstructionLoss(0.0, 0.0)(codes_i, codes_t, target)
    assert only_it.item() == pytest.approx(mse(c_it), rel=1e-6)


def test_loss_gradient_reaches_both_networks():
    codes_i = torch.randn(4, 8, requires_grad=True)
    codes_t = torch.randn(4, 8, requires_grad=True)
    total, _ = ReconstructionLoss(0.1, 0.1)(torch.tanh(codes_i), torch.tanh(codes_t), torch.eye(4))
    total.backward()
    assert codes_i.grad.abs().sum() > 0 and codes_t.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ alpha
def test_alpha_schedule():
    assert [alpha_for_epoch(e) for e in range(4)] == pytest.approx([1.0, math.sqrt(2), math.sqrt(3), 2.0])
    assert [alpha_for_epoch(e, "fixed") for e in range(3)] == [1.0, 1.0, 1.0]


def test_alpha_set_each_epoch_during_fit():
    images, texts, _ = synthetic_pairs(16)
    for schedule, want in (("sqrt", [1.0, math.sqrt(2), math.sqrt(3)]), ("fixed", [1.0, 1.0, 1.0])):
        m = get_method("djsrh")(8, 0, {**SMALL, "epochs": 3, "alpha_schedule": schedule}, TAGS_INFO)
        history = m.fit(TrainSet(images=images, texts=texts))
        assert [h["alpha"] for h in history] == pytest.approx(want)
        assert m.image_net.squash.alpha == pytest.approx(want[-1]) == m.text_net.squash.alpha




def test_fit_never_reads_labels():
    cls = get_method("djsrh")
    assert "labels" not in cls.needs and cls.needs == frozenset({"text"})
    images, texts, _ = synthetic_pairs(16)
    history = cls(8, 0, SMALL, TAGS_INFO).fit(LabelFreeTrainSet(images=images, texts=texts))
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)


def test_fit_deterministic_and_codes_contract():
    images, texts, _ = synthetic_pairs(32)
    codes = []
    for _ in range(2):
        m = get_method("djsrh")(16, 3, SMALL, TAGS_INFO)
        m.fit(TrainSet(images=images, texts=texts, labels=None))
        codes.append((m.encode(images, "image", "query"), m.encode(texts, modality="text", role="database")))
    for a, b in zip(*codes):
        assert a.dtype == np.int8 and a.shape == (32, 16) and set(np.unique(a)) <= {-1, 1}
        np.testing.assert_array_equal(a, b)
    # state round trip
    state = m.state_dict()
    other = get_method("djsrh")(16, 99, SMALL, TAGS_INFO)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.encode(texts, "text"), codes[1][1])
    np.testing.assert_array_equal(other.encode(images, "image"), codes[1][0])


def test_learns_cross_modal_structure():
    """Synthetic pairs: after a short fit, image codes are closer to texts of the same class than to others."""
    images, texts, labels = synthetic_pairs(96, seed=1)
    params = {**SMALL, "epochs": 15, "lr_image": 0.01, "image_hidden": 64, "text_hidden": 64}
    m = get_method("djsrh")(16, 0, params, TAGS_INFO)
    m.fit(TrainSet(images=images, texts=texts))
    bi, bt = m.encode(images, "image").astype(float), m.encode(texts, "text").astype(float)
    same = (labels @ labels.T) > 0
    sim = bi @ bt.T
    assert sim[same].mean() > sim[~same].mean() + 4


# ------------------------------------------------------------------------------------------ downsample
def test_downsample_pools_smallcnn_and_mlp_inputs():
    """``downsample`` average-pools the input of smallcnn / the pixel MLP (after the shift), not F_I's pixels."""
    info = DatasetInfo("mnist5k-tags", (16, 16, 1), 3, frozenset({"image", "tags", "text"}), text_dim=6)
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 1)).astype(np.uint8)
    item = torch.from_numpy(images[0].transpose(2, 0, 1).copy())
    cnn = get_method("djsrh")(8, 0, {"image_network": "backbone", "backbone": "smallcnn", "downsample": 2}, info)
    train, test = cnn.image_transforms
    full = (item.float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(test(item), torch.nn.functional.avg_pool2d(full[None], 2)[0])
    assert train(item).shape == (1, 8, 8)  # the shift (in stored pixels, before the pooling) keeps the size
    assert torch.equal(cnn._feature_fields(images)["pixels"].transform(item), item)  # F_I: the stored pixels
    assert cnn.encode(images, "image").shape == (4, 8)
    mlp = get_method("djsrh")(8, 0, {"image_network": "mlp", "downsample": 4, "image_hidden": 5}, info)
    assert mlp.image_net.backbone.net[1].in_features == 4 * 4
    assert mlp.image_transforms[1](item).shape == (1, 4, 4)
    one = get_method("djsrh")(8, 0, {"image_network": "mlp", "downsample": 1, "image_hidden": 5}, info)
    assert one.image_transforms[1](item).shape == (1, 16, 16)
    with pytest.raises(HashbenchError, match=r"djsrh\.downsample: 32 is not allowed"):
        get_method("djsrh")(8, 0, {"downsample": 32}, info)


def test_default_smallcnn_fits_and_encodes():
    """The embedded default (smallcnn on the pooled input, pixel F_I) trains and encodes end to end."""
    info = DatasetInfo("mnist5k-tags", (16, 16, 1), 3, frozenset({"image", "tags", "text"}), text_dim=6)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 16, 16, 1)).astype(np.uint8)
    texts = (rng.random((16, 6)) < 0.3).astype(np.float32)
    m = get_method("djsrh")(8, 0, {"epochs": 2, "batch_size": 8, "text_hidden": 16}, info)
    assert m.params["image_network"] == "backbone" and m.params["backbone"] == "smallcnn"
    history = m.fit(LabelFreeTrainSet(images=images, texts=texts))
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    codes = m.encode(images, "image", "query")
    assert codes.shape == (16, 8) and set(np.unique(codes)) <= {-1, 1}


# ------------------------------------------------------------------------------------------ refusals
def test_refuses_dataset_without_text():
    info = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))
    with pytest.raises(HashbenchError) as err:
        get_method("djsrh")(32, 0, None, info)
    msg = str(err.value)
    assert "\n" not in msg and "djsrh" in msg and "text" in msg and "mnist5k-tags" in msg


def test_param_and_input_errors():
    cls = get_method("djsrh")
    with pytest.raises(HashbenchError, match=r"djsrh\.affinity: 'both' is not allowed; use one of joint"):
        cls(32, 0, {"affinity": "both"}, TAGS_INFO)
    with pytest.raises(HashbenchError, match=r"djsrh\.alpha_schedule"):
        cls(32, 0, {"alpha_schedule": "linear"}, TAGS_INFO)
    m = cls(8, 0, SMALL, TAGS_INFO)
    with pytest.raises(HashbenchError, match=r"texts: bags of 5 words given; this model expects 6"):
        m.encode(np.zeros((2, 5), np.float32), modality="text")   # encode's input check (hashbench.inputs)
    with pytest.raises(HashbenchError, match="no texts"):
        m.fit(TrainSet(images=np.zeros((16, 8, 8, 1), np.uint8)))
    with pytest.raises(HashbenchError, match="modality: 'audio'"):
        m.encode(np.zeros((2, 6), np.float32), modality="audio")


def test_image_trainable_classifier_trains_only_the_hash_layer_and_fc6_fc7():
    """DJSRH's Wiki optimiser: SGD on the hash layer and AlexNet's classifier; the conv layers keep their weights."""
    info = DatasetInfo("wikipedia", (32, 32, 3), 10, frozenset({"image", "text"}), text_dim=6)
    params = {"backbone": "alexnet", "pretrained": False, "image_trainable": "classifier"}
    method = get_method("djsrh")(16, 0, params, info)
    (image_opt, _text_opt) = method.optimizers()
    trained = {id(q) for group in image_opt.optimizer.param_groups for q in group["params"]}
    net = method.image_net
    expected = [*net.hash_layer.parameters(), *net.backbone.net.classifier.parameters()]
    assert trained == {id(q) for q in expected}
    assert not any(q.requires_grad for q in net.backbone.net.features.parameters())
    every = get_method("djsrh")(16, 0, {**params, "image_trainable": "all"}, info).optimizers()[0]
    assert sum(len(g["params"]) for g in every.optimizer.param_groups) == len(list(net.parameters()))
    with pytest.raises(HashbenchError, match="image_trainable: 'classifier' is not allowed .* backbone smallcnn"):
        get_method("djsrh")(16, 0, {"image_trainable": "classifier"}, TAGS_INFO)
