"""tags: raw user tags of the training images -> merged weak targets and tag embeddings (see hashbench.tags), or with
``tags.source: official`` WSDHQ's own processed tags (see hashbench.official_tags).

Reads params: tags. Reads data/raw (dataset.h5, tag_truth.json when present) and data/split; writes data/tags
(vocab.json, merge_map.json, tags.h5, report.json). A dataset without tags gets an empty but valid output.
"""
from hashbench import official_tags, tags
from hashbench.config import load_params
from hashbench.stage import run_stage

OUT = "data/tags"


def main():
    p = tags.validate_params(load_params().get("tags"))
    (official_tags.run if p["source"] == "official" else tags.run)("data/raw", "data/split", OUT, p)


if __name__ == "__main__":
    run_stage(main, outputs=[OUT])
