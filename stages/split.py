"""split: query / database / train (/ labeled / unlabeled) index arrays for the dataset's protocol, checked.

Reads params: dataset, <dataset block> (its `split` protocol and its own `seed`).
"""
from hashbench.config import load_params
from hashbench.data import open_dataset
from hashbench.datasets import dataset_block
from hashbench.splits import make_split, save_split
from hashbench.stage import run_stage

OUT = "data/split"


def main():
    params = load_params()
    name = params.get("dataset")
    block = dataset_block(name, params.get(name))
    with open_dataset("data/raw") as dataset:
        split = make_split(dataset, block["split"], block["seed"])
        save_split(OUT, split, dataset, block["split"], seed=block["seed"])


if __name__ == "__main__":
    run_stage(main, outputs=[OUT])
