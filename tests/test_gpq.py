"""GPQ: its two losses against literal computations, the prototype codebook, and the method's contract."""
import math

import numpy as np
import pytest
import torch

from hashbench.errors import HashbenchError
from hashbench.evaluation import evaluate_aqd
from hashbench.losses.entropy_minimax import NegativeEntropyLoss, reverse_gradient
from hashbench.losses.npair_pq import NPairPQLoss
from hashbench.methods import DatasetInfo, TrainSet, get_method
from hashbench.methods.gpq import PrototypeQuantizer, intra_norm
from hashbench.pipeline import train_set

IMAGE_ONLY = DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"}))
TINY = {"iterations": 6, "labeled_batch": 10, "unlabeled_batch": 10}


def test_npair_pq_loss_matches_literal_definition():
    rng = np.random.default_rng(0)
    x, q = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 1]])
    want = 0.0
    for i in range(5):
        s = [float(x[i] @ q[j]) for j in range(5)]
        log_z = math.log(sum(math.exp(v) for v in s))
        shares = [float(y[i] @ y[j]) for j in range(5)]
        want += -sum(t / sum(shares) * (s[j] - log_z) for j, t in enumerate(shares)) / 5
    want += 5e-4 * (np.mean((x ** 2).sum(1)) + np.mean((q ** 2).sum(1)))
    got = NPairPQLoss()(torch.from_numpy(x), torch.from_numpy(q), torch.from_numpy(y)).item()
    assert got == pytest.approx(want, rel=1e-12)


def test_gradient_reversal_and_negative_entropy():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 2.0)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([-2.0, -4.0, -6.0]))
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    p = np.array([[0.5, 0.5], [0.75, 0.25]])
    assert NegativeEntropyLoss()(logits).item() == pytest.approx(np.mean((p * np.log(p + 1e-5)).sum(1)), rel=1e-6)


def test_prototype_codebook_and_soft_quantization():
    torch.manual_seed(0)
    pq = PrototypeQuantizer(books=3, words=4, sub_dim=5, n_classes=6, alpha=20.0, scale=4.0).double()
    words = pq.codewords()
    assert words.shape == (3, 4, 5)
    assert torch.allclose(words.norm(dim=-1), torch.ones(3, 4, dtype=torch.float64))
    # each codeword is the normalised softmax(alpha * <z, p_hat>) mixture of the unit prototypes of its book
    p_hat = pq.unit_prototypes()
    z = pq.z.view(4, 3, 5)
    m, k = 1, 2
    w = torch.softmax(20.0 * torch.stack([z[k, m] @ p_hat[c, m] for c in range(6)]), 0)
    mix = sum(w[c] * p_hat[c, m] for c in range(6))
    assert torch.allclose(words[m, k], mix / mix.norm())
    x = intra_norm(torch.randn(7, 15, dtype=torch.float64), 3)
    q = pq.soft_quantize(x, words)
    assert torch.allclose(q.view(7, 3, 5).norm(dim=-1), torch.ones(7, 3, dtype=torch.float64))
    pq.alpha = 1e6                              # hard limit: the nearest codeword of each book
    hard = pq.soft_quantize(x, words).view(7, 3, 5)
    nearest = pq.assign(x, words)
    assert torch.allclose(hard, words[torch.arange(3), nearest])
    logits = pq.logits(x, p_hat)
    assert torch.allclose(logits[2, 4], 16.0 / 3 * sum(x.view(7, 3, 5)[2, b] @ p_hat[4, b] for b in range(3)))


def tiny_train(n=40, n_unlabeled=30, seed=0):
    rng = np.random.default_rng(seed)
    return TrainSet(images=rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                    labels=np.eye(10, dtype=np.uint8)[np.arange(n) % 10],
                    unlabeled_images=rng.integers(0, 256, (n_unlabeled, 28, 28, 1), dtype=np.uint8))


def test_bits_must_fit_the_codebooks_and_unlabeled_images_are_needed():
    with pytest.raises(HashbenchError, match=r"^bits: 30 is not allowed for gpq .*multiple of 4"):
        get_method("gpq")(30, 0, TINY, IMAGE_ONLY)
    assert get_method("gpq")(24, 0, {**TINY, "codewords": 256}, IMAGE_ONLY).books == 3
    data = tiny_train()
    data.unlabeled_images = None
    with pytest.raises(HashbenchError, match="^gpq: no unlabeled images"):
        get_method("gpq")(32, 0, TINY, IMAGE_ONLY).fit(data)


def test_train_set_passes_unlabeled_images(mnist5k):
    dataset, split = mnist5k
    data = train_set(get_method("gpq"), dataset, split)
    assert data.labels is not None and len(data.unlabeled_images) == len(split["unlabeled"])


def test_method_is_deterministic_survives_save_load_and_scores_like_the_official_distance():
    train = tiny_train()
    runs = []
    for _ in range(2):
        method = get_method("gpq")(32, 5, TINY, IMAGE_ONLY)
        history = method.fit(train)
        runs.append((history, method.encode(train.images, role="query"), method.encode(train.images),
                     method.codebooks(), method.state_dict()))
    assert runs[0][0] == runs[1][0] and all(np.array_equal(a, b) for a, b in zip(runs[0][1:4], runs[1][1:4]))
    assert [h["iteration"] for h in history] == [4, 6]      # one row per pass over the 40 labelled images
    query, codes, books = runs[0][1:4]
    assert query.dtype == np.float32 and query.shape == (40, 96)
    assert codes.dtype == np.uint8 and codes.shape == (40, 8) and codes.max() < 16
    assert books.shape == (8, 16, 96) and np.count_nonzero(books[3, :, :36]) == 0
    # the evaluator's score sum_m <q_m, Z_eff[m, b_m]> ranks like the official distance sum_m (1 - <q_m, z>)
    words = books.reshape(8, 16, 8, 12)[np.arange(8), :, np.arange(8)]             # (M, K, d)
    dist = np.stack([(1 - np.einsum("md,nmd->nm", query[i].reshape(8, 12), words[np.arange(8), codes])).sum(1)
                     for i in range(40)])
    score = query @ books[np.arange(8)[None, :], codes].sum(1).T
    assert np.allclose(score, 8 - dist, atol=1e-5)
    res = evaluate_aqd(query, codes, books, train.labels, train.labels, topk="all")
    assert 0 < res["map"] <= 1
    fresh = get_method("gpq")(32, 99, TINY, IMAGE_ONLY)
    fresh.load_state_dict(runs[0][4])
    assert np.array_equal(fresh.encode(train.images), codes) and np.array_equal(fresh.codebooks(), books)
