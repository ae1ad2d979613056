"""The train stage as a process: resume after kill -9 (byte-identical model), two processes under torchrun, the
non-finite loss stop, and memory that does not grow with the number of image paths."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_pipeline import copy_project, run

from hashbench.embedded import EMBEDDED
from hashbench.splits import save_split

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory, mnist5k):
    """A copy of the project with mnist5k's download and split outputs in place (no DVC)."""
    root = tmp_path_factory.mktemp("project")
    copy_project(root)
    dataset, split = mnist5k
    shutil.copytree(dataset.folder, root / "data/raw")
    save_split(root / "data/split", split, dataset, EMBEDDED["mnist5k"]["split"], seed=EMBEDDED["mnist5k"]["seed"])
    return root


def configure(root: Path, method: str, block: dict, **top) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params.update(dataset="mnist5k", method=method, bits=32, seed=0, **top)
    params[method].update(block)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def clean(root: Path) -> None:
    for name in ("models", "metrics", "dvclive", ".hashbench"):
        shutil.rmtree(root / name, ignore_errors=True)


def test_kill_9_then_resume_gives_the_same_model(project):
    configure(project, "dnnh", {"epochs": 3}, checkpoint_every=5, workers=2)
    clean(project)
    run("python stages/train.py", project)
    uninterrupted = (project / "models/model.pt").read_bytes()
    clean(project)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([sys.executable, "stages/train.py"], cwd=project, env=env, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    checkpoints = project / ".hashbench/checkpoints"
    deadline = time.time() + 120
    while not list(checkpoints.glob("*/last.pt")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the stage and its DataLoader workers, mid-training
    proc.wait()
    assert not (project / "models/model.pt").exists(), "the run ended before it was killed"
    resumed = run("python stages/train.py", project)
    lines = [line for line in resumed.stderr.splitlines() if "resuming from" in line]
    assert len(lines) == 1 and lines[0].startswith("dnnh: resuming from .hashbench/checkpoints/"), resumed.stderr
    assert (project / "models/model.pt").read_bytes() == uninterrupted
    assert json.loads((project / "metrics/train.json").read_text())["resumed_from"] is not None
    assert len((project / "dvclive/plots/metrics/loss.tsv").read_text().splitlines()) == 1 + 3  # epochs replayed
    assert not list(checkpoints.glob("*/last.pt"))


def test_torchrun_two_cpu_processes_train_to_a_sane_map(project):
    configure(project, "dnnh", {"epochs": 8}, workers=1, checkpoint_every=None)
    clean(project)
    run("python -m torch.distributed.run --standalone --nproc_per_node=2 stages/train.py", project)
    train = json.loads((project / "metrics/train.json").read_text())
    assert train["world_size"] == 2 and train["device"] == "cpu" and train["epochs"] == 8
    assert len((project / "dvclive/plots/metrics/loss.tsv").read_text().splitlines()) == 1 + 8
    run("python stages/encode.py && python stages/evaluate.py", project)
    metrics = json.loads((project / "metrics/eval.json").read_text())
    assert metrics["map@all"]["i2i"] > 0.3  # random codes: about 0.1 on 10 balanced classes


def test_non_finite_loss_stops_the_stage_without_outputs(project):
    configure(project, "dnnh", {"epochs": 1, "lr": 1e6}, workers=0)
    clean(project)
    proc = run("python stages/train.py", project, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1 and proc.stderr.rstrip().endswith(errors[0])
    assert errors[0].startswith("error: dnnh: the loss is nan at epoch 1, batch ")
    for name in ("models/model.pt", "models/model.json", "metrics/train.json", "dvclive"):
        assert not (project / name).exists()


MEMORY_SCRIPT = """
import os, resource, sys
import numpy as np
from hashbench.data import open_dataset
from hashbench.methods import get_method
from hashbench.pipeline import dataset_info, train_set
from hashbench.training import Runtime
with open_dataset(sys.argv[1]) as ds:
    n = ds.n_items
    method = get_method("gpq")(8, 0, {"iterations": 8, "labeled_batch": 10, "unlabeled_batch": 10}, dataset_info(ds))
    data = train_set(type(method), ds, {"train": np.arange(20), "unlabeled": np.arange(20, n)})
method.runtime = Runtime(workers=2, progress=False)
method.fit(data)
own = int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
print(own + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def test_peak_memory_does_not_grow_with_the_path_list(tmp_path):
    """GPQ with 183,234 unlabeled image paths (NUS-WIDE's count; the files repeat) peaks within 1.2x of 1,000."""
    from PIL import Image

    from hashbench.data import write_dataset

    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.jpg")
    peaks = []
    for n in (1_000, 183_234):
        folder = tmp_path / f"raw{n}"
        write_dataset(folder, name="photos", labels=np.eye(3, dtype=np.uint8)[np.arange(n) % 3], class_names="abc",
                      image_paths=[f"im{i % 8}.jpg" for i in range(n)], image_root=str(tmp_path), image_size=32)
        proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(folder)], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr
        peaks.append(int(proc.stdout.split()[-1]))
    assert peaks[1] <= 1.2 * peaks[0], peaks
