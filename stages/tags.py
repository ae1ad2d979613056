"""tags: raw user tags of the training images -> merged weak targets and tag embeddings (see hashbench.tags).

Reads params: tags. Reads data/raw (dataset.h5, tag_truth.json when present) and data/split; writes data/tags
(vocab.json, merge_map.json, tags.h5, report.json). A dataset without tags gets an empty but valid output.
"""
from hashbench.config import load_params
from hashbench.stage import run_stage
from hashbench.tags import run, validate_params

OUT = "data/tags"


def main():
    params = load_params()
    run("data/raw", "data/split", OUT, validate_params(params.get("tags")))


if __name__ == "__main__":
    run_stage(main, outputs=[OUT])
