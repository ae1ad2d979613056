"""encode: codes for the query and database items, per modality the method encodes. Reads params: device, workers.

Writes data/codes.h5: query/<modality> and database/<modality> (+-1 codes, or for quantized methods query
features and database codeword assignments with the codebooks), and per role the item ids (dataset rows,
<role>/ids) and, for image-path sets, the file names (<role>/names).
"""
from pathlib import Path

from hashbench.config import load_params
from hashbench.data import open_dataset
from hashbench.pipeline import MODEL_META, check_codes, load_model, read_model_meta, stored, write_codes
from hashbench.runconfig import check_run_matches
from hashbench.splits import load_split
from hashbench.stage import run_stage
from hashbench.training.runtime import runtime_params

OUT = Path("data/codes.h5")


def main():
    check_run_matches(read_model_meta(), load_params(), str(MODEL_META))
    method = load_model()
    method.runtime = runtime_params(load_params(), checkpoints=None)
    split = load_split("data/split")
    codes, items = {}, {}
    with open_dataset("data/raw") as dataset:
        for role in ("query", "database"):
            paths = dataset.image_paths(split[role]) if dataset.image_root is not None else None
            items[role] = (split[role], paths)
            for modality in method.modalities:  # streamed batch by batch (DataLoader workers decode the images)
                key = f"{role}/{modality}"
                codes[key] = method.encode(stored(dataset, modality, split[role]), modality=modality, role=role)
                if role == "database":
                    check_codes(key, codes[key])
    write_codes(OUT, method, codes, items)


if __name__ == "__main__":
    run_stage(main, outputs=[OUT])
