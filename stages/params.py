"""params: check params.yaml and write each stage's resolved settings to data/params/<stage>.json.

Reads the whole params.yaml (dvc.yaml's params stage tracks every key). An unknown dataset or method, or a bad
value, stops here in one line naming the key and what is allowed.
"""
from hashbench.config import load_params
from hashbench.runconfig import FOLDER, write_slices
from hashbench.stage import run_stage


def main():
    write_slices(load_params(), FOLDER)


if __name__ == "__main__":
    run_stage(main, outputs=[FOLDER])
