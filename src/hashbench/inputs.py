"""What a trained method accepts in `encode`: images of any size (arrays, PIL images or files) and bags of words,
checked against what the model was trained on, with one-line errors naming what was expected.

`images` is the one place where a model's input images are brought to its stored size: PIL bilinear resizing to
the dataset's recorded image shape (H, W, C); the method's own test transform then runs as in the pipeline. For
image-file datasets the pipeline's encode gives that transform each file at its original size, so codes from
`encode` on files of such a model can differ slightly from the pipeline's (the file is resized twice).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import HashbenchError

__all__ = ["images", "texts", "bag_of_words"]


def _shape_text(shape) -> str:
    return "×".join(str(int(s)) for s in shape)


def _read_file(path: Path, channels: int) -> np.ndarray:
    """With the dataset reader's size limit (a decompression bomb stops in one line)."""
    from .data import open_image

    image = open_image(path, "L" if channels == 1 else "RGB", hint="give an image file")
    return np.asarray(image, dtype=np.uint8)


def _one(item, channels: int, where: str) -> np.ndarray:
    """One image as uint8 (H, W, C): a file path, a PIL image or an array (H, W) / (H, W, C)."""
    if isinstance(item, (str, Path)):
        return _one(_read_file(Path(item), channels), channels, str(item))
    if hasattr(item, "convert") and hasattr(item, "size"):  # a PIL image: read as a file would be
        return _one(np.asarray(item.convert("L" if channels == 1 else "RGB"), dtype=np.uint8), channels, where)
    a = np.asarray(item)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise HashbenchError(f"{where}: shape {a.shape} is not an image; use (H, W) or (H, W, channels) pixels")
    if a.dtype != np.uint8:
        raise HashbenchError(f"{where}: dtype {a.dtype} is not allowed; use uint8 pixels (0-255)")
    if a.shape[2] != channels:
        raise HashbenchError(f"{where}: {a.shape[2]} channel(s) given; this model expects {channels}")
    return a


def _resize(a: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
    out = np.asarray(im.resize((width, height), Image.BILINEAR), dtype=np.uint8)
    return out.reshape(height, width, a.shape[2])


def images(data, shape) -> np.ndarray:
    """uint8 (n, H, W, C) at the model's shape (H, W, C) from a batch: a 4-D uint8 array (n, h, w, C), or a list of
    images, each a file path, a PIL image or a uint8 array (h, w) / (h, w, C) of any size (files and PIL images
    are converted to grayscale or RGB to match C; arrays must have C channels). Other sizes are resized (PIL
    bilinear)."""
    height, width, channels = (int(s) for s in shape)
    if isinstance(data, np.ndarray) and data.ndim == 4:
        if len(data) == 0:
            raise HashbenchError(f"images: empty batch; give at least one {_shape_text(shape)} image")
        if data.dtype != np.uint8:
            raise HashbenchError(f"images: dtype {data.dtype} is not allowed; use uint8 pixels (0-255)")
        if data.shape[3] != channels:
            raise HashbenchError(f"images: {data.shape[3]} channel(s) given; this model expects {channels} "
                                 f"({_shape_text(shape)} images)")
        if data.shape[1:3] == (height, width):
            return data
        return np.stack([_resize(a, height, width) for a in data])
    if isinstance(data, np.ndarray) or isinstance(data, (str, Path)):
        raise HashbenchError(f"images: a batch is a 4-D uint8 array (n, H, W, {channels}) or a list of images; "
                             f"got {type(data).__name__} of shape {np.shape(data)}")
    items = list(data)
    if not items:
        raise HashbenchError(f"images: empty batch; give at least one {_shape_text(shape)} image")
    out = []
    for i, item in enumerate(items):
        a = _one(item, channels, f"images[{i}]")
        out.append(a if a.shape[:2] == (height, width) else _resize(a, height, width))
    return np.stack(out)


def texts(data, dim: int) -> np.ndarray:
    """float32 (n, dim) bags of words from a 2-D array (or one 1-D row)."""
    if dim < 1:
        raise HashbenchError("texts: this model has no text input; give images")
    a = np.asarray(data)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.dtype.kind not in "biuf":
        raise HashbenchError(f"texts: shape {a.shape} dtype {a.dtype} is not allowed; use (n, {dim}) bags of words")
    if len(a) == 0:
        raise HashbenchError(f"texts: empty batch; give at least one bag of words of length {dim}")
    if a.shape[1] != dim:
        raise HashbenchError(f"texts: bags of {a.shape[1]} words given; this model expects {dim} (its text "
                             f"vocabulary)")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise HashbenchError("texts: NaN or inf given; use word counts")
    return a.astype(np.float32, copy=False)


def bag_of_words(words: str, vocab) -> tuple[np.ndarray, list[str]]:
    """(1, len(vocab)) float32 word counts of the whitespace- or comma-separated `words`, and the words that are
    not in the vocabulary (left out)."""
    if not vocab:
        raise HashbenchError("--text: this model has no saved text vocabulary; retrain it with this version")
    position = {w: i for i, w in enumerate(vocab)}
    bag = np.zeros((1, len(vocab)), np.float32)
    unknown = []
    for word in words.replace(",", " ").split():
        if word in position:
            bag[0, position[word]] += 1.0
        else:
            unknown.append(word)
    if not bag.any():
        raise HashbenchError(f"--text: none of {words!r} is in the model's text vocabulary ({len(vocab)} words, "
                             f"e.g. {', '.join(vocab[:5])})")
    return bag, unknown
