"""hashbench: a DVC pipeline that reproduces deep hashing and deep quantization papers.

Using a trained model from Python (see the README's "Using a trained model"):

    import hashbench
    model = hashbench.load_model("models")                   # the trained method
    codes = model.encode(images)                             # images of any size, files or arrays; role="query"
    index = hashbench.load_index("data/codes.h5")            # or hashbench.Index(codes, ids)
    ids, distances = index.search(model.encode(queries, role="query"), k=10)
"""
import importlib

__version__ = "0.1.0"

# the public API, imported on first use (the console script and the stages need not load torch or numba for it)
_API = {"load_model": "pipeline", "load_index": "pipeline", "Index": "search", "to_faiss": "search",
        "write_faiss": "search"}
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
