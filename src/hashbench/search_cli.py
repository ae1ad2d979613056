"""`hashbench encode`, `hashbench search` and `hashbench export-faiss`: use a trained model outside the pipeline.

    hashbench encode --model models/ FILES_OR_DIR... -o codes.h5      # database codes with file names
    hashbench search --model models/ --codes codes.h5 QUERY [-k 10] [--score l2]   # rank, id, distance, name
    hashbench search --model models/ --codes data/codes.h5 --text "seven 7"   # cross-modal models
    hashbench export-faiss --codes codes.h5 -o index.faiss [--kind flat|ivf|hnsw]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .errors import HashbenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def register(subparsers) -> None:
    p = subparsers.add_parser("encode", help="encode image files with a trained model into a codes file")
    p.add_argument("--model", default="models", help="folder with model.pt and model.json (default: models)")
    p.add_argument("inputs", nargs="+", metavar="FILES_OR_DIR", help="image files or folders (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="codes file to write (HDF5), e.g. codes.h5")
    p.add_argument("--batch-size", type=int, default=256, help="images read and encoded at a time")
    p.set_defaults(run=run_encode)

    p = subparsers.add_parser("search", help="search a codes file with a query image or text")
    p.add_argument("--model", default="models", help="folder with model.pt and model.json (default: models)")
    p.add_argument("--codes", default="data/codes.h5", help="codes file: the pipeline's or `hashbench encode`'s")
    p.add_argument("query", nargs="?", help="query image file")
    p.add_argument("--text", help="query words (cross-modal models): searched against the image codes")
    p.add_argument("-k", type=int, default=10, help="results to print (default 10)")
    p.add_argument("--score", choices=("inner", "l2"), default="inner",
                   help="quantized codes: inner = the evaluator's asymmetric inner product (default), l2 = the "
                        "asymmetric squared L2 distance (finds an image itself and its near-duplicates)")
    p.set_defaults(run=run_search)

    p = subparsers.add_parser("export-faiss", help="write a codes file's database as a FAISS index with ids")
    p.add_argument("--codes", default="data/codes.h5", help="codes file (default: data/codes.h5)")
    p.add_argument("-o", "--output", required=True, help="FAISS index file to write")
    p.add_argument("--kind", default="flat", help="flat (exact), ivf or hnsw (binary codes only)")
    p.add_argument("--modality", default="image", help="which database codes: image (default) or text")
    p.add_argument("--nlist", type=int, help="ivf: number of lists (default 4·sqrt(n), at most 4,096)")
    p.add_argument("--nprobe", type=int, default=16, help="ivf: lists searched per query (default 16)")
    p.add_argument("--hnsw-m", type=int, default=32, help="hnsw: neighbours per node (default 32)")
    p.set_defaults(run=run_export)


# ----------------------------------------------------------------------------------------------------------- encode
def image_files(inputs: list[str]) -> list[Path]:
    """The image files named or found (recursively, sorted) in folders; one line naming a missing input."""
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise HashbenchError(f"{path}: no such file or folder")
    if not files:
        raise HashbenchError(f"{', '.join(inputs)}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def run_encode(args) -> int:
    from tqdm import tqdm

    from .pipeline import load_model, write_codes

    if args.batch_size < 1:
        raise HashbenchError(f"--batch-size: {args.batch_size} is not allowed; use a positive int")
    method = load_model(args.model)
    if "image" not in method.modalities:
        raise HashbenchError(f"{args.model}: method {method.name} does not encode images")
    files = image_files(args.inputs)
    parts = []
    for s in tqdm(range(0, len(files), args.batch_size), desc="encode", unit="batch", file=sys.stderr):
        parts.append(method.encode(files[s:s + args.batch_size], "image", "database"))
    out = Path(args.output)
    write_codes(out, method, {"database/image": np.concatenate(parts)},
                {"database": (np.arange(len(files)), [str(f) for f in files])})
    print(f"wrote {out}: {len(files)} images, {method.name} {method.bits} bits"
          f"{' (codeword assignments + codebooks)' if method.quantized else ''}")
    return 0


# ----------------------------------------------------------------------------------------------------------- search
def _check_match(method, attrs, codes_path) -> None:
    made_by = (str(attrs.get("method", "")), int(attrs.get("bits", -1)))
    if made_by != (method.name, method.bits):
        raise HashbenchError(f"{codes_path}: codes of {made_by[0]} {made_by[1]} bits, but the model is {method.name} "
                             f"{method.bits} bits; encode the database with this model")


def run_search(args) -> int:
    from . import inputs
    from .pipeline import load_index, load_model, read_codes

    if (args.query is None) == (args.text is None):
        raise HashbenchError("give a query image file or --text \"words\" (one of them)")
    if args.k < 1:
        raise HashbenchError(f"-k: {args.k} is not allowed; use a positive int")
    method = load_model(args.model)
    _check_match(method, read_codes(Path(args.codes))[0], args.codes)
    index = load_index(Path(args.codes), "image")
    if args.text is not None:
        if "text" not in method.modalities:
            raise HashbenchError(f"--text: method {method.name} encodes {', '.join(method.modalities)} only")
        bag, unknown = inputs.bag_of_words(args.text, method.info.text_vocab)
        if unknown:
            print(f"note: not in the model's text vocabulary, left out: {' '.join(unknown)}", file=sys.stderr)
        query = method.encode(bag, "text", "query")
    else:
        query = method.encode([Path(args.query)], "image", "query")
    hits = index.search(query, args.k, score=args.score)
    label = "score" if index.quantized and args.score == "inner" else "distance"
    print(f"{'rank':>4}  {'id':>8}  {label:>10}  name")
    for rank, (item, dist) in enumerate(zip(hits.ids[0], hits.distances[0]), 1):
        value = f"{dist:10.4f}" if index.quantized else f"{dist:10d}"
        print(f"{rank:>4}  {item:>8}  {value}  {index.name(item) or '-'}")
    return 0


# ----------------------------------------------------------------------------------------------------------- export
def run_export(args) -> int:
    from .data import atomic_path
    from .pipeline import load_index
    from .search import to_faiss, write_faiss

    index = load_index(Path(args.codes), args.modality)
    faiss_index = to_faiss(index, args.kind, nlist=args.nlist, nprobe=args.nprobe, hnsw_m=args.hnsw_m)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        write_faiss(faiss_index, tmp)
    what = ("quantized (our codebooks, inner-product score); query with the model's query features" if index.quantized
            else f"{index.bits}-bit binary; query with np.packbits(codes >= 0, axis=1)")
    print(f"wrote {out}: {type(faiss_index).__name__} ({args.kind}) over {len(index)} items, ids mapped, {what}")
    return 0
