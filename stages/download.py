"""download: put the dataset named by `dataset` into data/raw/ (dataset.h5 + manifest.json).

Embedded sets are generated from package-shipped MNIST, offline; real sets are downloaded with checksums (or taken
from data/manual/<dataset>/) and converted. Reads params: dataset, <dataset block>.
"""
from hashbench.config import load_params
from hashbench.datasets import check_dataset_name, prepare_dataset
from hashbench.stage import run_stage

OUT = "data/raw"


def main():
    params = load_params()
    name = check_dataset_name(params.get("dataset"))
    prepare_dataset(name, params.get(name), OUT)


if __name__ == "__main__":
    run_stage(main, outputs=[OUT])
