"""evaluate: label-based retrieval metrics with the one evaluator, per retrieval direction. Reads params: evaluate.

`evaluate.protocol: paper` uses the method's paper protocol (K, zero-relevant policy, directions) where it has one,
otherwise the block's own topk/zero. Writes metrics/eval.json, plots/pr/<direction>.json and
plots/precision_at_n/<direction>.json (one file per curve, so `dvc plots` draws each).
"""
import json
from pathlib import Path

from hashbench.config import Param, load_params, validate
from hashbench.data import atomic_write_json, atomic_write_text, open_dataset
from hashbench.evaluation import evaluate_aqd, evaluate_hamming
from hashbench.pipeline import read_codes
from hashbench.runconfig import check_run_matches
from hashbench.splits import load_split
from hashbench.stage import run_stage

SCHEMA = {
    "protocol": Param("paper", str, choices=("paper", "custom")),
    "topk": Param(None, int, ge=1, nullable=True),  # null = the whole database
    "zero": Param("count", str, choices=("count", "skip")),
    "radius": Param(2, int, ge=0),
    "map_all": Param(True, bool),  # also mAP over the whole ranking (a full sort per query; false at NUS scale)
}
OUTS = ["metrics/eval.json", "plots/pr", "plots/precision_at_n"]
CODES = Path("data/codes.h5")


def main():
    p = validate("evaluate", load_params().get("evaluate"), SCHEMA)
    attrs, codes = read_codes(CODES)
    check_run_matches(attrs.get("run", {}), load_params(), str(CODES))
    preset = attrs["preset"] if p["protocol"] == "paper" else {}
    topk, zero = preset.get("topk", p["topk"]), preset.get("zero", p["zero"])
    directions = {d: attrs["directions"][d] for d in preset.get("directions", attrs["directions"])}
    split = load_split("data/split")
    with open_dataset("data/raw") as dataset:
        query_labels, db_labels = dataset.labels(split["query"]), dataset.labels(split["database"])
    used_k = "all" if topk in (None, "all") or topk >= len(db_labels) else topk  # the K actually used
    metrics = {"method": attrs["method"], "bits": int(attrs["bits"]), "dataset": attrs["dataset"],
               "topk": used_k, "zero": zero, "ties": "stable", "norm": "retrieved",
               "n_query": len(query_labels), "n_database": len(db_labels),
               "map": {}, "map_all": {}, "precision_radius": {}, "n_query_scored": {}}
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
            metrics["precision_radius"][name] = result["precision_radius"]
        x = "rank" if attrs["quantized"] else "radius"  # PR over ranks for real scores, over radii for Hamming
        pr = [dict(zip((x, "precision", "recall"), row))
              for row in zip(result["pr"][x], result["pr"]["precision"], result["pr"]["recall"])]
        metrics["map"][name] = result["map"]
        metrics["n_query_scored"][name] = result["n_query_scored"]
        if p["map_all"]:
            metrics["map_all"][name] = result["map_all"]
        pn = result["precision_at_n"]
        atomic_write_text(f"plots/pr/{name}.json", json.dumps(pr, indent=1) + "\n")
        atomic_write_text(f"plots/precision_at_n/{name}.json",
                          json.dumps([{"n": n, "precision": v} for n, v in zip(pn["n"], pn["precision"])], indent=1)
                          + "\n")
    for key in ("map_all", "precision_radius"):
        if not metrics[key]:
            del metrics[key]
    if "precision_radius" in metrics:
        metrics["radius"] = p["radius"]
    atomic_write_json("metrics/eval.json", metrics)


if __name__ == "__main__":
    run_stage(main, outputs=OUTS)
