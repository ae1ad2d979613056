import numpy as np
import pytest
import scipy.linalg

from hashbench.errors import HashbenchError
from hashbench.methods import DatasetInfo, TrainSet, get_method

PAIRS = DatasetInfo("toy", (2, 3, 1), 3, frozenset({"image", "text"}), text_dim=4)


def test_projections_solve_the_generalised_eigenproblem(image_text_pairs):
    images, texts = image_text_pairs()
    method = get_method("cvh")(3, 0, {"reg": 0.01}, PAIRS)
    history = method.fit(TrainSet(images, texts=texts))
    x = images.reshape(len(images), -1) / 255.0
    x, t = x - x.mean(0), texts - texts.mean(0, dtype=np.float64)
    n = len(x)
    cxx, ctt, cxt = x.T @ x / n + 0.01 * np.eye(6), t.T @ t / n + 0.01 * np.eye(4), x.T @ t / n
    a = np.block([[np.zeros((6, 6)), cxt], [cxt.T, np.zeros((4, 4))]])
    b = np.block([[cxx, np.zeros((6, 4))], [np.zeros((4, 6)), ctt]])
    values, vectors = scipy.linalg.eigh(a, b)  # ascending; B-normalised w^T B w = 1
    top = vectors[:, ::-1][:, :3]
    ours = np.vstack([method.arrays["image_projection"], method.arrays["text_projection"]]) / np.sqrt(2)
    assert np.allclose(np.abs(np.sum(ours * top, axis=0) / np.sum(top * top, axis=0)), 1, atol=1e-4)  # same up to sign
    assert np.allclose(np.abs(ours), np.abs(top), atol=1e-4)
    assert history[0]["loss"] == pytest.approx(1 - values[::-1][:3].mean(), abs=1e-5)


def test_identical_views_get_identical_codes(image_text_pairs):
    images, _ = image_text_pairs(seed=1)
    text = images.reshape(len(images), -1).astype(np.float32) / 255.0  # the text view is the image itself
    info = DatasetInfo("toy", (2, 3, 1), 3, frozenset({"image", "text"}), text_dim=6)
    method = get_method("cvh")(4, 0, None, info)
    method.fit(TrainSet(images, texts=text))
    assert np.array_equal(method.encode(images, "image"), method.encode(text, "text"))


def test_refusals(image_text_pairs):
    images, texts = image_text_pairs()
    with pytest.raises(HashbenchError, match=r"^bits: 5 is not allowed for cvh with 6-d image and 4-d text"):
        get_method("cvh")(5, 0, None, PAIRS).fit(TrainSet(images, texts=texts))
    with pytest.raises(HashbenchError, match=r"^method cvh needs the text modality, which dataset mnist5k lacks"):
        get_method("cvh")(8, 0, None, DatasetInfo("mnist5k", (28, 28, 1), 10, frozenset({"image"})))
    with pytest.raises(HashbenchError, match="modality: 'tags' is not allowed"):
        get_method("cvh")(2, 0, None, PAIRS).encode(texts, "tags")
