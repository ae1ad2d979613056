"""Broken or hostile inputs stop a stage with one line naming the file and what is wrong: exit 2, no traceback, no
partial outputs."""
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hashbench import tags
from hashbench.data import Dataset, write_dataset
from hashbench.embedded import EMBEDDED
from hashbench.errors import HashbenchError
from hashbench.splits import save_split

REPO = Path(__file__).resolve().parents[1]


def stage(name, cwd, limit_bytes=None):
    def limit():  # `ulimit -f`: writes past the limit fail (or would kill the process with SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py")], cwd=cwd, capture_output=True,
                          text=True, preexec_fn=limit if limit_bytes else None)


def one_line(proc, starts):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(starts), proc.stderr
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]


@pytest.fixture(scope="module")
def project(tmp_path_factory, mnist5k):
    """data/raw, data/split, a trained lsh model and its codes, made by the stages in a scratch folder."""
    root = tmp_path_factory.mktemp("faults")
    shutil.copytree(mnist5k[0].folder, root / "data/raw")
    with Dataset(root / "data/raw") as dataset:
        save_split(root / "data/split", mnist5k[1], dataset, EMBEDDED["mnist5k"]["split"], seed=0)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(dataset="mnist5k", method="lsh", bits=16)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name in ("tags", "train", "encode"):
        assert stage(name, root).returncode == 0
    return root


@pytest.fixture
def scratch(project, tmp_path):
    shutil.copytree(project, tmp_path / "p")
    return tmp_path / "p"


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.slow
@pytest.mark.parametrize("damaged, run, message", [
    ("data/split/split.npz", "encode", "error: data/split/split.npz: not a readable split file"),
    ("models/model.pt", "encode", "error: models/model.pt: not a readable model file"),
    ("data/codes.h5", "evaluate", "error: data/codes.h5: not a readable codes file"),
])
def test_truncated_files(scratch, damaged, run, message):
    truncate(scratch / damaged)
    one_line(stage(run, scratch), message)
    if run == "encode":
        assert not (scratch / "data/codes.h5").exists()
    else:
        assert not (scratch / "metrics/eval.json").exists()


@pytest.mark.slow
def test_corrupt_model_description(scratch):
    (scratch / "models/model.json").write_text('{"method": "lsh", "bits": ')
    one_line(stage("encode", scratch), "error: models/model.json: not a model description")
    assert not (scratch / "data/codes.h5").exists()


@pytest.mark.slow
def test_full_disk(scratch):
    shutil.rmtree(scratch / "data/split")
    one_line(stage("split", scratch, limit_bytes=4096), "error: data/split: could not write (File too large); free "
                                                          "disk space (or raise the file-size limit) and rerun")
    assert not (scratch / "data/split").exists()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_image(tmp_path):
    from PIL import Image

    Image.new("1", (8_000, 6_000)).save(tmp_path / "bomb.png")  # over the limit, under twice it
    Image.new("1", (20_000, 20_000)).save(tmp_path / "huge.png")  # over twice the limit: PIL's own refusal
    assert (tmp_path / "huge.png").stat().st_size < 100_000
    write_dataset(tmp_path / "raw", name="bombs", labels=np.eye(2, dtype=np.uint8), class_names=["x", "y"],
                  image_paths=["bomb.png", "huge.png"], image_root=str(tmp_path), image_size=32)
    for i, (name, size) in enumerate((("bomb.png", "8000x6000"), ("huge.png", "more than twice that many"))):
        with Dataset(tmp_path / "raw") as dataset, pytest.raises(HashbenchError) as err:
            dataset.images([i])
        assert str(err.value).startswith(f"{tmp_path / name}: image of {size} pixels is over the 40000000-pixel")


@pytest.mark.parametrize("binary", [True, False])
def test_word2vec_header_claiming_a_huge_count(tmp_path, binary):
    path = tmp_path / ("vectors.bin" if binary else "vectors.txt")
    path.write_bytes(b"100000000 300\n" + (b"word " + b"\0" * 1200 if binary else b"word " + b"0.1 " * 300))
    with pytest.raises(HashbenchError, match=r"header claims 100000000 vectors of 300 dimensions \(111\.8 GiB"):
        tags.load_pretrained(str(path))
    path.write_bytes(b"1000 300\n" + (b"word " + b"\0" * 1200 if binary else b"word " + b"0.1 " * 300))
    with pytest.raises(HashbenchError, match=r"header claims 1000 vectors of 300 dimensions, which need at least"):
        tags.load_pretrained(str(path))


@pytest.mark.slow
def test_stage_split_survives_without_limit(scratch):
    """The full-disk case above fails because of the limit, not because the stage cannot run."""
    shutil.rmtree(scratch / "data/split")
    assert stage("split", scratch).returncode == 0 and (scratch / "data/split/split.npz").is_file()
    assert os.path.getsize(scratch / "data/split/split.npz") > 4096


@pytest.mark.slow
def test_evaluate_records_the_depth_actually_used(scratch):
    import json

    params = yaml.safe_load((scratch / "params.yaml").read_text())
    params["evaluate"].update(protocol="custom", topk=10**6, map_all=False)
    (scratch / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert stage("evaluate", scratch).returncode == 0
    metrics = json.loads((scratch / "metrics/eval.json").read_text())
    assert metrics["topk"] == "all" and metrics["n_database"] < 10**6
