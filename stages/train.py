"""train: fit the method named by `method` on the train split. Reads params: method, bits, seed, preset,
<method block>, device, precision, workers, nproc, checkpoint_every.

Writes models/model.pt (+ model.json, with the augmentation and transforms that ran and the paper preset named),
metrics/train.json (device, precision, torch/CUDA versions, processes, throughput) and dvclive/ (loss, lr and
throughput per epoch). Checkpoints go to .hashbench/checkpoints/<key>/, outside DVC's outputs: a run stopped and
started again with the same params, data and code resumes from its last checkpoint. With `nproc` > 1 the stage runs
itself under torchrun (also `torchrun --standalone --nproc_per_node=N stages/train.py`); then only rank 0 writes.
`preset` names the paper preset the run was made from (`hashbench preset run NAME` sets it with the preset's
values). One warning line goes to stderr when a real dataset runs the method's embedded defaults (naming the preset
to use) or when a named preset's values were changed.
"""
import json
import os
import sys
import time
from pathlib import Path

from hashbench import presets
from hashbench.config import load_params
from hashbench.data import atomic_write_text, open_dataset
from hashbench.embedded import EMBEDDED
from hashbench.errors import HashbenchError
from hashbench.methods import get_method
from hashbench.pipeline import dataset_info, run_identity, save_model, train_set
from hashbench.runconfig import check_run_matches, train_settings
from hashbench.splits import load_split
from hashbench.stage import run_stage
from hashbench.training.live import FOLDER, DvcLiveLog
from hashbench.training.runtime import from_params, note, validate_runtime

OUTS = ["models/model.pt", "models/model.json", "metrics/train.json", FOLDER]


def main():
    params = load_params()
    settings = train_settings(params)
    method_cls = get_method(settings["method"])
    bits, seed, preset = settings["bits"], settings["seed"], settings["preset"]
    top = validate_runtime(params)
    if top["nproc"] > 1 and "LOCAL_RANK" not in os.environ:
        return launch(top["nproc"])
    runtime = from_params(top)
    warning = presets.advice(params, frozenset(EMBEDDED))
    if warning and runtime.main:
        print(warning, file=sys.stderr)
    with open_dataset("data/raw") as dataset:
        method = method_cls(bits, seed, settings["params"], dataset_info(dataset))
        data = train_set(method_cls, dataset, load_split("data/split"))
    method.runtime = runtime
    about = runtime.describe()
    if runtime.main:
        note(f"train: {method.name} on {about['device']}, {about['precision']}, {runtime.world_size} process(es), "
             f"{runtime.workers} data worker(s)")
    runtime.log = DvcLiveLog() if runtime.main else None
    start = time.perf_counter()
    history = method.fit(data)
    seconds = time.perf_counter() - start
    trainer = getattr(method, "trainer", None)
    if runtime.main and trainer is None:  # a method fitted without the trainer: its rows, logged the same way
        for row in history:
            runtime.log(row, round(len(data) / max(seconds, 1e-9), 2))
    if runtime.main:
        # params.yaml edited while training (e.g. a second `dvc exp run` in this workspace): DVC would record the
        # new values for this model in dvc.lock and its run-cache, so nothing is written
        check_run_matches(run_identity(method), load_params(), "the model just trained")
        save_model(method, preset=preset)
        items, busy = (trainer.items_seen, trainer.seconds) if trainer else (len(data) * len(history), seconds)
        summary = {"method": method.name, "bits": bits, "seed": seed, "preset": preset, "loss": history[-1]["loss"],
                   "epochs": len(history), "train_items": len(data), "seconds": round(seconds, 3),
                   "samples_per_second": round(items / max(busy, 1e-9), 1),
                   # bit-reproducible only for the same device and thread count (see the README)
                   **about,
                   **{k: v for k, v in method.run_info().items() if k == "augment"},
                   "resumed_from": trainer.resumed_from if trainer else None}
        Path("metrics").mkdir(exist_ok=True)
        atomic_write_text("metrics/train.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
        runtime.log.close()
        if trainer is not None:  # kept until now: a run stopped before these writes resumes at its end
            trainer.discard_checkpoint()
    if runtime.world_size > 1:
        import torch.distributed

        torch.distributed.destroy_process_group()


def launch(nproc: int) -> None:
    """This stage as `nproc` processes under torch's elastic launcher, as `torchrun --standalone` starts them. Rank 0
    prints to this terminal; the others' stderr goes to files, read only when rank 0 stopped without its own error
    line. The launcher's own report of a failed process (a traceback) is not shown: the process's line says why."""
    import logging
    import tempfile
    import uuid

    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default for several processes on one machine
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as logs:
        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                              rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                              logs_specs=DefaultLogsSpecs(logs, redirects={r: Std.ERR for r in range(1, nproc)}))
        try:
            elastic_launch(config, sys.executable)(__file__)
        except ChildFailedError as failed:
            first = failed.failures.get(0)
            if first is None or first.exitcode != 2:  # rank 0 was stopped before it could say why
                lines = [line for f in sorted(Path(logs).rglob("stderr.log"))
                         for line in f.read_text(errors="replace").splitlines() if line.startswith("error: ")]
                print(lines[0] if lines else f"error: a training process failed ({failed.failures})", file=sys.stderr)
            sys.exit(2)


def other_rank(fn) -> None:
    """A process other than rank 0 (its stderr goes to a file, see `launch`): on a user error it writes its line
    there and waits a little before stopping, since the launcher ends all processes when one stops and rank 0 usually
    meets the same error (a non-finite loss, a device) and should be the one that prints it."""
    try:
        fn()
    except HashbenchError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        time.sleep(5)
        sys.exit(2)


if __name__ == "__main__":
    if os.environ.get("RANK", "0") == "0":
        run_stage(main, outputs=OUTS)
    else:
        other_rank(main)
