"""evaluate: label-based retrieval metrics with the one evaluator, per retrieval direction. Reads params: evaluate.

`evaluate.protocol: paper` uses the method's paper protocol (K, zero-relevant policy, directions) where it has one,
with K and the zero policy of the paper preset for this dataset (presets/<method>-<dataset>.yaml) where one exists,
otherwise the block's own topk/zero. Writes metrics/eval.json (keys named after their protocol, e.g. `map@50`,
`map@5000_skip`, `map@all`; see hashbench.protocol), plots/pr/<direction>.json and plots/precision_at_n/<direction>.json
(one file per curve, so `dvc plots` draws each). The precision-recall points whose mean precision and mean recall are
both 0 are left out (small radii where no query yet retrieves a relevant item: the vertical drop to the origin says
nothing about the codes); at the other points an empty retrieved set counts precision 0, as in the evaluator.
"""
import json
from pathlib import Path

from hashbench import presets
from hashbench.config import load_params, validate
from hashbench.data import atomic_write_json, atomic_write_text, open_dataset
from hashbench.evaluation import evaluate_aqd, evaluate_hamming
from hashbench.pipeline import read_codes
from hashbench.protocol import SCHEMA, map_key, paper, radius_key, resolve
from hashbench.runconfig import check_run_matches
from hashbench.splits import load_split
from hashbench.stage import run_stage

OUTS = ["metrics/eval.json", "plots/pr", "plots/precision_at_n"]
CODES = Path("data/codes.h5")


def pr_rows(pr: dict, x: str) -> list[dict]:
    rows = [dict(zip((x, "precision", "recall"), row)) for row in zip(pr[x], pr["precision"], pr["recall"])]
    return [r for r in rows if r["precision"] > 0 or r["recall"] > 0]


def main():
    p = validate("evaluate", load_params().get("evaluate"), SCHEMA)
    attrs, codes = read_codes(CODES)
    check_run_matches(attrs.get("run", {}), load_params(), str(CODES))
    dataset_preset = presets.find(attrs["method"], attrs["dataset"])
    topk, zero, wanted = resolve(p, paper(attrs["preset"], dataset_preset.params if dataset_preset else None))
    directions = {d: attrs["directions"][d] for d in (wanted or attrs["directions"])}
    split = load_split("data/split")
    with open_dataset("data/raw") as dataset:
        query_labels, db_labels = dataset.labels(split["query"]), dataset.labels(split["database"])
    used_k = "all" if topk is None or topk >= len(db_labels) else topk  # the K actually used
    # the key names the protocol asked for (a K beyond the database is the whole ranking, recorded in `topk`)
    key, key_all, key_radius = map_key(topk, zero), map_key(None, "count"), radius_key(p["radius"])
    metrics = {"method": attrs["method"], "bits": int(attrs["bits"]), "dataset": attrs["dataset"],
               "topk": used_k, "zero": zero, "ties": "stable", "norm": "retrieved",
               "n_query": len(query_labels), "n_database": len(db_labels),
               key: {}, key_all: {}, key_radius: {}, "n_query_scored": {}}
    for folder in ("plots/pr", "plots/precision_at_n"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    for name, (q_mod, db_mod) in directions.items():
        query, database = codes[f"query/{q_mod}"], codes[f"database/{db_mod}"]
        if attrs["quantized"]:
            result = evaluate_aqd(query, database, codes["codebooks"], query_labels, db_labels,
                                  topk=topk, zero=zero, map_all=p["map_all"], progress=True)
        else:
            result = evaluate_hamming(query, database, query_labels, db_labels, topk=topk, zero=zero,
                                      radius=p["radius"], map_all=p["map_all"], progress=True)
            metrics[key_radius][name] = result["precision_radius"]
        x = "rank" if attrs["quantized"] else "radius"  # PR over ranks for real scores, over radii for Hamming
        if p["map_all"]:
            metrics[key_all][name] = result["map_all"]
        metrics[key][name] = result["map"]  # after map_all: with K = all and zero = count they are one number
        metrics["n_query_scored"][name] = result["n_query_scored"]
        pn = result["precision_at_n"]
        atomic_write_text(f"plots/pr/{name}.json", json.dumps(pr_rows(result["pr"], x), indent=1) + "\n")
        atomic_write_text(f"plots/precision_at_n/{name}.json",
                          json.dumps([{"n": n, "precision": v} for n, v in zip(pn["n"], pn["precision"])], indent=1)
                          + "\n")
    for name in (key_all, key_radius):
        if not metrics[name]:
            del metrics[name]
    if key_radius in metrics:
        metrics["radius"] = p["radius"]
    atomic_write_json("metrics/eval.json", metrics)


if __name__ == "__main__":
    run_stage(main, outputs=OUTS)
