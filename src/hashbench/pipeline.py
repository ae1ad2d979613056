"""Glue the stages share: what a method may see of the dataset, saving/loading a trained method, the codes file."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import torch

from .data import Dataset, atomic_path, atomic_write_json
from .errors import HashbenchError
from .methods import DatasetInfo, Method, TrainSet, get_method
from .search import Index
from .training import StoredRows

MODEL = Path("models/model.pt")
MODEL_META = Path("models/model.json")


def dataset_info(dataset: Dataset) -> DatasetInfo:
    text_dim = dataset.text([0]).shape[1] if "text" in dataset.modalities else 0
    vocab = tuple(dataset.text_vocab() or ()) if text_dim else ()
    return DatasetInfo(name=dataset.name, image_shape=tuple(dataset.image_shape or ()), n_classes=dataset.n_classes,
                       modalities=frozenset(dataset.modalities), text_dim=int(text_dim), text_vocab=vocab)


def train_set(method: type[Method], dataset: Dataset, split: dict, tags_folder: str | Path = "data/tags") -> TrainSet:
    """Only what the method declares in `needs` is read; labels stay None for methods that do not declare them.
    Images and texts stay on disk (`StoredRows`): the training loaders read them batch by batch."""
    train = split["train"]
    data = TrainSet(images=StoredRows(dataset.folder, "images", train))
    if "labels" in method.needs:
        data.labels = dataset.labels(train)
    if "text" in method.needs:
        data.texts = StoredRows(dataset.folder, "text", train)
    if "tags" in method.needs:
        from .tags import load_targets

        data.tag_targets, data.tag_embeddings = load_targets(tags_folder, train)
    if "unlabeled" in method.needs:
        if "unlabeled" not in split:
            raise HashbenchError(f"method {method.name} needs unlabeled images; dataset {dataset.name}'s split has none")
        data.unlabeled_images = StoredRows(dataset.folder, "images", split["unlabeled"])
    return data


def run_identity(method: Method) -> dict:
    """What a model was trained under: compared with params.yaml by the stages after train."""
    return {"method": method.name, "bits": method.bits, "seed": method.seed, "params": method.params}


def save_model(method: Method, folder: str | Path = MODEL.parent, preset: str | None = None) -> None:
    """<folder>/model.pt (weights) and <folder>/model.json (method, bits, seed, params, the paper preset named)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / MODEL.name) as tmp:
        torch.save(method.state_dict(), tmp)
    info = method.info
    meta = {**run_identity(method), "preset": preset,
            "dataset": {"name": info.name, "image_shape": list(info.image_shape), "n_classes": info.n_classes,
                        "modalities": sorted(info.modalities), "text_dim": info.text_dim,
                        "text_vocab": list(info.text_vocab)}, **method.run_info()}
    atomic_write_json(folder / MODEL_META.name, meta)


def _model_files(folder: str | Path) -> tuple[Path, Path]:
    folder = Path(folder)
    return folder / MODEL.name, folder / MODEL_META.name


def read_model_meta(folder: str | Path = MODEL.parent) -> dict:
    weights, meta_path = _model_files(folder)
    if not weights.is_file() or not meta_path.is_file():
        raise HashbenchError(f"{weights}: no trained model; run `dvc repro train`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        d = meta["dataset"]
        meta["info"] = DatasetInfo(str(d["name"]), tuple(d["image_shape"]), int(d["n_classes"]),
                                   frozenset(d["modalities"]), int(d["text_dim"]),
                                   tuple(str(w) for w in d.get("text_vocab", ())))
        meta["bits"], meta["seed"], meta["params"] = int(meta["bits"]), int(meta["seed"]), dict(meta["params"])
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise HashbenchError(f"{meta_path}: not a model description (corrupt or hand-edited JSON); rerun "
                             f"`dvc repro train`") from None
    return meta


def load_model(folder: str | Path = MODEL.parent) -> Method:
    """The trained method saved in `folder` (model.pt + model.json), ready to `encode`."""
    weights, meta_path = _model_files(folder)
    meta = read_model_meta(folder)
    method = get_method(meta["method"])(meta["bits"], meta["seed"], meta["params"], meta["info"])
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HashbenchError(f"{weights}: not a readable model file ({reason}); rerun `dvc repro train`") from None
    try:
        method.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError):
        raise HashbenchError(f"{weights}: does not fit {meta_path} ({meta['method']}, {meta['bits']} bits); rerun "
                             f"`dvc repro train`") from None
    return method


def stored(dataset: Dataset, modality: str, index) -> StoredRows:
    """Rows `index` of a modality ("image" or "text") of `dataset`, for `Method.encode` to stream."""
    return StoredRows(dataset.folder, "images" if modality == "image" else "text", index)


def check_codes(key: str, codes: np.ndarray) -> None:
    """Stop with one line when every item got the same code (a collapsed or diverged model): no ranking exists."""
    if len(codes) > 1 and (codes == codes[:1]).all():
        raise HashbenchError(f"{key}: all {len(codes)} items got the same code, so no ranking is possible (the model "
                             f"collapsed; retrain with another lr or seed)")


def directions(method: type[Method]) -> dict[str, tuple[str, str]]:
    """Retrieval directions: name -> (query modality, database modality)."""
    pairs = {"i2i": ("image", "image")}
    if "text" in method.modalities:
        pairs.update({"i2t": ("image", "text"), "t2i": ("text", "image"), "t2t": ("text", "text")})
    return pairs


def write_codes(path: Path, method: Method, codes: dict[str, np.ndarray], items: dict | None = None) -> None:
    """codes: {"query/image": array, "database/text": array, ...}; plus codebooks for quantized methods.
    items: {role: (ids, names or None)}: each role's item ids (dataset rows) and file names, stored as
    <role>/ids and <role>/names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(method=method.name, bits=method.bits, dataset=method.info.name, quantized=method.quantized,
                       preset=json.dumps(method.preset), directions=json.dumps(directions(type(method))),
                       run=json.dumps(run_identity(method)))
        for key, array in codes.items():
            f.create_dataset(key, data=array)
        for role, (ids, names) in (items or {}).items():
            f.create_dataset(f"{role}/ids", data=np.asarray(ids, np.int64))
            if names is not None:
                f.create_dataset(f"{role}/names", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
        if method.quantized:
            f.create_dataset("codebooks", data=method.codebooks().astype(np.float32))


def read_codes(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(attrs, arrays) of a codes file; <role>/names come back as str. Files from before item ids were stored
    have no <role>/ids (their items are the split's rows in order)."""
    path = Path(path)
    if not path.is_file():
        raise HashbenchError(f"{path}: no codes; run `dvc repro encode`")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (json.loads(v) if k in ("preset", "directions", "run") else v) for k, v in f.attrs.items()}
            arrays = {}
            f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                         else None)
    except (OSError, ValueError, KeyError):
        raise HashbenchError(f"{path}: not a readable codes file (truncated or corrupt); rerun `dvc repro encode`")\
            from None
    for key in [k for k in arrays if k.endswith("/names")]:
        arrays[key] = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arrays[key]], object)
    return attrs, arrays


def load_index(path: Path, modality: str = "image") -> Index:
    """The database side of a codes file (pipeline's data/codes.h5 or `hashbench encode`'s) as a searchable Index:
    its codes (assignments and codebooks when quantized), item ids and file names."""
    attrs, arrays = read_codes(path)
    key = f"database/{modality}"
    if key not in arrays:
        have = sorted(k.split("/")[1] for k in arrays if k.startswith("database/") and k.split("/")[1] in
                      ("image", "text"))
        raise HashbenchError(f"{path}: has no {modality} database codes; it has {', '.join(have) or 'none'}")
    codes = arrays[key]
    ids = arrays.get("database/ids")
    return Index(codes, ids if ids is not None else np.arange(len(codes)), codebooks=arrays.get("codebooks"),
                 names=arrays.get("database/names"), method=str(attrs.get("method", "")))
