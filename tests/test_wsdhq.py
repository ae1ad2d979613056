"""WSDHQ: its two losses, the quantization helpers (k-means init, ICM, least squares) and a tiny end-to-end fit."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import LabelFreeTrainSet

from hashbench.errors import HashbenchError
from hashbench.losses.adaptive_margin import AdaptiveCosineMarginLoss
from hashbench.losses.cosine_quantization import CosineQuantizationLoss
from hashbench.methods import DatasetInfo, TrainSet, get_method
from hashbench.quantization import icm_encode, icm_sweep, kmeans_init, objective, subspace_blocks, update_codebooks

INFO = DatasetInfo("mnist5k-tags", (16, 16, 1), 10, frozenset({"image", "tags", "text"}))
E3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])


@pytest.mark.parametrize("gamma, expected", [(1.0, (1.0 + (2.0 - math.sqrt(2))) / 2),
                                             (2.0, (0.5 + (2.0 - math.sqrt(2))) / 2)])
def test_margin_loss_hand_computed(gamma, expected):
    """z = (1,1)/sqrt2; tags e0=(1,0) positive, e1=(0,1), e2=(-1,0) negative: cos = (.7071, .7071, -.7071).
    gamma=1: m01 = 1 - 0 = 1, m02 = 1 - (-1) = 2 -> hinges 1 - 0 = 1 and 2 - 1.4142; gamma=2: m = (1-cos)^2 / 2 ->
    0.5 and 2. The untagged second image adds nothing; the normaliser is |P||N| = 2. Scaling r or e changes nothing."""
    feats = torch.tensor([[3.0, 3.0], [0.2, -0.5]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    loss = AdaptiveCosineMarginLoss(gamma)(feats, targets, E3 * torch.tensor([[2.0], [5.0], [0.5]]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    fixed = AdaptiveCosineMarginLoss(adaptive=False, margin=0.7)(feats, targets, E3)
    assert fixed.item() == pytest.approx((0.7 + max(0.0, 0.7 - math.sqrt(2))) / 2, rel=1e-6)


def test_margin_loss_chunking_and_no_positives():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(9, 5, generator=g)
    emb = torch.randn(7, 5, generator=g)
    targets = (torch.rand(9, 7, generator=g) < 0.3).float()
    full = AdaptiveCosineMarginLoss()(feats, targets, emb)
    chunked = AdaptiveCosineMarginLoss(max_elements=49)(feats, targets, emb)  # one image per chunk
    assert chunked.item() == pytest.approx(full.item(), rel=1e-6)
    zero = AdaptiveCosineMarginLoss()(feats.requires_grad_(), torch.zeros(9, 7), emb)
    assert zero.item() == 0.0
    zero.backward()  # still differentiable


def test_quantization_loss_raw_features_and_fixed_reconstruction():
    r = torch.tensor([[0.5, -0.2], [0.1, 0.3]], requires_grad=True)
    recon = torch.tensor([[0.4, 0.0], [0.0, 0.0]], requires_grad=True)
    e = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    loss = CosineQuantizationLoss()(r, recon, e)
    err = np.array([[0.1, -0.2], [0.1, 0.3]])
    want = np.mean(np.sum((err @ e.numpy().T) ** 2, axis=1))  # raw e, raw r: no normalisation
    assert loss.item() == pytest.approx(want, rel=1e-6)
    loss.backward()
    assert r.grad is not None and recon.grad is None


def _random_problem(n=60, dim=6, m=2, k=8, t=4, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((n, dim)).astype(np.float32)
    books = rng.standard_normal((m, k, dim)).astype(np.float32)
    emb = rng.standard_normal((t, dim))
    return rng, feats, books, emb.T @ emb


def test_icm_sweep_never_increases_objective():
    rng, feats, books, metric = _random_problem()
    codes = rng.integers(0, 8, (60, 2)).astype(np.int64)
    before = objective(feats, books, codes, metric)
    for _ in range(3):
        icm_sweep(feats, books, codes, metric, order=rng.permutation(2))
        after = objective(feats, books, codes, metric)
        assert after <= before + 1e-9
        before = after
    # from h = 0 (no codeword) the objective ends below that of the empty reconstruction
    empty = np.full((60, 2), -1)
    codes = icm_encode(feats, books, metric, sweeps=3, rng=np.random.default_rng(1))
    assert codes.dtype == np.uint8
    assert objective(feats, books, codes, metric) <= objective(feats, books, empty, metric)


def test_icm_step_is_the_exact_coordinate_minimum():
    _, feats, books, metric = _random_problem(n=5, k=4)
    codes = np.zeros((5, 2), np.int64)
    swept = icm_sweep(feats, books, codes.copy(), metric, order=[1])
    for i in range(5):
        costs = [objective(feats[i:i + 1], books, np.array([[codes[i, 0], k]]), metric) for k in range(4)]
        assert swept[i, 1] == int(np.argmin(costs))


def test_least_squares_update_matches_direct_solve():
    rng = np.random.default_rng(0)
    n, m, k, dim = 30, 2, 5, 3
    codes = rng.integers(0, k - 1, (n, m))  # codeword k-1 unused in both codebooks
    feats = rng.standard_normal((n, dim))
    h = np.zeros((n, m * k))
    for j in range(m):
        h[np.arange(n), j * k + codes[:, j]] = 1.0
    direct = np.linalg.solve(h.T @ h + 1e-3 * np.eye(m * k), h.T @ feats).reshape(m, k, dim)
    previous = np.full((m, k, dim), 7.0, np.float32)
    books = update_codebooks(feats, codes, k, reg=1e-3, previous=previous)
    np.testing.assert_allclose(books[:, :k - 1], direct[:, :k - 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(books[:, k - 1], 7.0)  # unused codewords keep their previous value
    # reconstruction of the fitted codes is the least-squares fit
    assert objective(feats, books, codes) <= objective(feats, np.zeros_like(books), codes)


def test_kmeans_init_is_block_diagonal():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((300, 7)).astype(np.float32)
    books = kmeans_init(feats, 3, 16, seed=0)
    assert books.shape == (3, 16, 7)
    for m, block in enumerate(subspace_blocks(7, 3)):
        outside = np.setdiff1d(np.arange(7), block)
        assert np.all(books[m][:, outside] == 0) and np.any(books[m][:, block] != 0)
    np.testing.assert_array_equal(books, kmeans_init(feats, 3, 16, seed=0))


@pytest.mark.parametrize("bits", [12, 0, 4, True, 16.0])
def test_bits_not_multiple_of_8_rejected(bits):
    with pytest.raises(HashbenchError) as err:
        get_method("wsdhq")(bits, 0, None, INFO)
    assert "\n" not in str(err.value) and "bits" in str(err.value) and "multiple of 8" in str(err.value)


def test_fit_encode_roundtrip_and_asymmetric_score():
    rng = np.random.default_rng(0)
    n, t, dim = 48, 5, 8
    images = rng.integers(0, 256, (n, 16, 16, 1), dtype=np.uint8)
    targets = (rng.random((n, t)) < 0.4).astype(np.float32)
    targets[:3] = 0  # untagged images are allowed
    emb = rng.standard_normal((t, dim)).astype(np.float32)
    params = {"epochs": 2, "batch_size": 16, "lr_step": 4, "encode_batch_size": 20}
    method = get_method("wsdhq")(16, 3, params, INFO)
    history = method.fit(TrainSet(images, tag_targets=targets, tag_embeddings=emb))
    assert len(history) == 2 and history[1]["codebook_refresh"] and all(np.isfinite(h["loss"]) for h in history)
    query = method.encode(images[:6], role="query")
    db = method.encode(images, role="database")
    books = method.codebooks()
    assert query.dtype == np.float32 and query.shape == (6, dim)
    assert db.dtype == np.uint8 and db.shape == (n, 2)
    assert books.dtype == np.float32 and books.shape == (2, 256, dim)
    # state_dict round trip (weights_only-compatible tensors)
    state = method.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    other = get_method("wsdhq")(16, 3, params, INFO)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.encode(images[:6], role="query"), query)
    np.testing.assert_array_equal(other.encode(images, role="database"), db)


def test_fit_without_tags_is_one_line_error():
    method = get_method("wsdhq")(8, 0, {"epochs": 1}, INFO)
    with pytest.raises(HashbenchError, match="tags stage"):
        method.fit(TrainSet(np.zeros((4, 16, 16, 1), np.uint8)))




def test_fit_label_free_deterministic_and_lambda_zero_before_codebooks():
    """Tags only (labels raise if read); the same seed gives identical features, codes and codebooks; L_q is 0 until
    the first codebook refresh (end of epoch 2) and positive afterwards."""
    rng = np.random.default_rng(1)
    n, t, dim = 40, 4, 6
    images = rng.integers(0, 256, (n, 16, 16, 1), dtype=np.uint8)
    targets = (rng.random((n, t)) < 0.5).astype(np.float32)
    emb = rng.standard_normal((t, dim)).astype(np.float32)
    params = {"epochs": 3, "batch_size": 16, "lr_step": 4}
    assert get_method("wsdhq").needs == frozenset({"tags"})
    runs = []
    for _ in range(2):
        method = get_method("wsdhq")(8, 5, params, INFO)
        history = method.fit(LabelFreeTrainSet(images, tag_targets=targets, tag_embeddings=emb))
        runs.append((history, method.encode(images, role="query"), method.encode(images), method.codebooks()))
    history = runs[0][0]
    assert [h["codebook_refresh"] for h in history] == [False, True, False]
    assert history[0]["quant"] == 0.0 and history[1]["quant"] == 0.0 and history[2]["quant"] > 0.0
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1:], runs[1][1:]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("iterations, refreshes", [
    (14, [False, True, False, True, False]),           # 4 full passes + 2 steps
    (17, [False, True, False, True, False, False]),    # 5 full passes + 2 steps: the cut 6th pass is even
])
def test_iterations_replace_epochs_and_refresh_after_full_passes(iterations, refreshes):
    """`iterations` (the official length in steps): passes of ceil(N / batch) steps, the last one cut, a codebook
    refresh after every 2 full passes and none after the cut one (as the official train_iter % (2 x batches))."""
    rng = np.random.default_rng(2)
    n, t, dim = 40, 4, 6  # 3 steps per pass of 16
    images = rng.integers(0, 256, (n, 16, 16, 1), dtype=np.uint8)
    targets = (rng.random((n, t)) < 0.5).astype(np.float32)
    emb = rng.standard_normal((t, dim)).astype(np.float32)
    method = get_method("wsdhq")(8, 0, {"epochs": 50, "iterations": iterations, "batch_size": 16, "lr_step": 4},
                                 INFO)
    history = method.fit(TrainSet(images, tag_targets=targets, tag_embeddings=emb))
    assert method.trainer.step + 1 == iterations and len(history) == len(refreshes)  # not 50 epochs
    assert [h["codebook_refresh"] for h in history] == refreshes


def test_tag_target_rows_must_match_images():
    method = get_method("wsdhq")(8, 0, {"epochs": 1}, INFO)
    train = TrainSet(np.zeros((4, 16, 16, 1), np.uint8), tag_targets=np.zeros((3, 2), np.float32),
                     tag_embeddings=np.ones((2, 5), np.float32))
    with pytest.raises(HashbenchError) as err:
        method.fit(train)
    assert "\n" not in str(err.value) and "3 rows of tag targets" in str(err.value)
