"""encode: codes for the query and database items, per modality the method encodes. Reads no params.

Writes data/codes.h5: query/<modality> and database/<modality> (+-1 codes, or for quantized methods query
features and database codeword assignments with the codebooks).
"""
from pathlib import Path

import numpy as np

from hashbench.config import load_params
from hashbench.data import open_dataset
from hashbench.pipeline import MODEL_META, load_model, read_model_meta, write_codes
from hashbench.runconfig import check_run_matches
from hashbench.splits import load_split
from hashbench.stage import run_stage

OUT = Path("data/codes.h5")
CHUNK = 4096  # items read and encoded at a time: bounds memory for image-path sets (a multiple of batch sizes)


def main():
    check_run_matches(read_model_meta(), load_params(), str(MODEL_META))
    method = load_model()
    split = load_split("data/split")
    codes = {}
    with open_dataset("data/raw") as dataset:
        for role in ("query", "database"):
            for modality in method.modalities:
                read = dataset.images if modality == "image" else dataset.text
                index = split[role]
                codes[f"{role}/{modality}"] = np.concatenate([
                    method.encode(read(index[s:s + CHUNK]), modality=modality, role=role)
                    for s in range(0, len(index), CHUNK)])
    write_codes(OUT, method, codes)


if __name__ == "__main__":
    run_stage(main, outputs=[OUT])
