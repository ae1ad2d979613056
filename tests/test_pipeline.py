"""End to end: `dvc repro` of a tiny configuration in a temporary copy of the repository."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # DVC runs of the whole pipeline

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(cmd, cwd, check=True):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def copy_project(root: Path) -> None:
    """The project's tracked and untracked-but-not-ignored files, without pipeline outputs or dvc.lock."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        src = REPO / name
        if src.is_file() and not name.startswith(("data/", "models/", "metrics/", "plots/", "dvclive/")) \
                and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / name)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git + DVC copy of the project's tracked files, with a tiny configuration, reproduced once."""
    root = tmp_path_factory.mktemp("repo")
    copy_project(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params.update(dataset="mnist5k", method="dnnh", bits=32)
    params["dnnh"].update(epochs=1)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run("git init -q && git add -A && git commit -qm init", root)
    proc = run("dvc repro", root)
    assert ran_stages(proc.stdout) == ["params", "download", "split", "tags", "train", "encode", "evaluate", "plot"]
    run("git add -A && git commit -qm repro", root)
    return root


def test_outputs_a_user_looks_at(repo):
    import json

    metrics = json.loads((repo / "metrics/eval.json").read_text())
    assert 0 < metrics["map@all"]["i2i"] <= 1 and metrics["bits"] == 32 and metrics["method"] == "dnnh"
    assert "map" not in metrics and metrics["topk"] == "all" and metrics["zero"] == "count"
    assert metrics["n_query"] == 500 and metrics["n_database"] == 4500
    train = json.loads((repo / "metrics/train.json").read_text())
    assert train["epochs"] == 1 and train["samples_per_second"] > 0
    for png in ("pr.png", "precision_at_n.png", "loss.png", "ranked.png", "tsne.png"):
        assert (repo / "plots/images" / png).stat().st_size > 1000
    assert json.loads((repo / "plots/pr/i2i.json").read_text())
    shown = run("dvc plots show --json", repo).stdout
    assert "plots/pr/i2i.json" in shown and "errors" not in json.loads(shown)


def test_second_repro_runs_nothing(repo):
    proc = run("dvc repro", repo)
    assert ran_stages(proc.stdout) == []


def test_same_params_and_seed_give_byte_identical_codes_and_metrics(repo):
    before = {name: (repo / name).read_bytes() for name in ("data/codes.h5", "metrics/eval.json", "models/model.pt")}
    run("python stages/train.py && python stages/encode.py && python stages/evaluate.py", repo)
    for name, content in before.items():
        assert (repo / name).read_bytes() == content, name


def test_changing_bits_and_method_reruns_only_train_to_plot(repo):
    proc = run("dvc exp run -S bits=16 -S method=lsh", repo)
    assert ran_stages(proc.stdout) == ["params", "train", "encode", "evaluate", "plot"]
    diff = run("dvc metrics diff", repo).stdout
    assert "map@all.i2i" in diff and "bits" in diff
    run("git checkout -q -- . && dvc checkout -q", repo, check=False)


def set_param(repo, key, value):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    block, _, leaf = key.rpartition(".")
    (params[block] if block else params)[leaf] = yaml.safe_load(value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.parametrize("key, value, stage, message", [
    ("method", "foo", "train", "error: method: 'foo' is not allowed; use one of lsh, dnnh"),
    ("bits", "-4", "train", "error: bits: -4 is not allowed"),
    ("bits", "'32'", "train", "error: bits: '32' is not allowed"),
    ("dnnh.lr", "-0.1", "train", "error: dnnh.lr: -0.1 is not allowed; use a number > 0"),
    ("dnnh.epochs", "2.5", "train", "error: dnnh.epochs: 2.5 is not allowed; use an integer >= 1"),
    ("dataset", "cifar", "download", "error: dataset: 'cifar' is not allowed; use one of mnist5k, mnist5k-tags"),
    ("evaluate.zero", "drop", "evaluate", "error: evaluate.zero: 'drop' is not allowed; use one of count, skip"),
])
def test_bad_input_stops_with_one_line(repo, key, value, stage, message):
    """The stage prints one line naming key, value and what is allowed; exit non-zero; its outputs are gone."""
    original = (repo / "params.yaml").read_text()
    set_param(repo, key, value)
    try:
        proc = run(f"python stages/{stage}.py", repo, check=False)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr
        assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")] == [proc.stderr.strip()]
        if stage == "train":
            assert not (repo / "models/model.pt").exists() and not (repo / "metrics/train.json").exists()
        if key not in ("method", "dataset"):
            return
        # Names through DVC too (they pick a params block): non-zero, our one error line naming the bad value
        # (the params stage checks names before any stage picks a block by name), no traceback
        proc = run("dvc repro", repo, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "Traceback" not in output
        assert message in output and "are missing from" not in output, output
    finally:
        (repo / "params.yaml").write_text(original)
        run("dvc checkout -q", repo, check=False)


def test_stages_after_train_refuse_a_model_params_yaml_no_longer_describes(repo):
    """A second `dvc exp run` in the same workspace rewrites params.yaml under a trained model; DVC's run-cache
    can then restore that model for the new params. The stages after train compare the model with params.yaml."""
    original = (repo / "params.yaml").read_text()
    set_param(repo, "dnnh.epochs", "3")
    try:
        for stage, what in (("encode", "models/model.json"), ("evaluate", "data/codes.h5"), ("plot", "data/codes.h5")):
            proc = run(f"python stages/{stage}.py", repo, check=False)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.strip() == (f"error: {what} was made under other params (dnnh.epochs: 1 there, 3 in "
                                           f"params.yaml); rerun `dvc repro` (use `dvc exp run --queue` or `--temp` "
                                           f"for concurrent experiments)")
            run("dvc checkout -q", repo)  # a failed stage removes its own outputs
    finally:
        (repo / "params.yaml").write_text(original)
        run("dvc checkout -q", repo, check=False)
    assert ran_stages(run("dvc repro", repo).stdout) == []


def test_train_records_nothing_when_params_change_while_it_trains(repo, monkeypatch):
    """params.yaml edited during training: the model no longer matches it, so no output is written."""
    import runpy

    from hashbench.methods.dnnh import DNNH

    fit = DNNH.fit

    def fit_then_edit(self, data):
        history = fit(self, data)
        set_param(repo, "dnnh.epochs", "3")
        return history

    original = (repo / "params.yaml").read_text()
    monkeypatch.chdir(repo)
    monkeypatch.setattr(DNNH, "fit", fit_then_edit)
    stage = runpy.run_path(str(repo / "stages/train.py"))
    try:
        with pytest.raises(SystemExit) as exit_code:
            stage["run_stage"](stage["main"], stage["OUTS"])
        assert exit_code.value.code == 2
        assert not any((repo / name).exists() for name in stage["OUTS"])
    finally:
        (repo / "params.yaml").write_text(original)
        run("dvc checkout -q", repo, check=False)


@pytest.mark.parametrize("method", ["djsrh", "hyp2"])
def test_stages_on_a_real_format_dataset(tmp_path, mirflickr_archives, method):
    """A miniature MIRFLICKR-25K (JPEG files of different sizes, user tags, common-tag text) through every stage
    after download: image-path sets, the tags stage on real-style tags, and the text modality."""
    import json

    from hashbench.datasets import get_dataset

    copy_project(tmp_path)
    mirflickr_archives(tmp_path, n=90)
    spec = get_dataset("mirflickr25k")
    block = {"image_size": 32, "subset": "all",
             "split": {"protocol": "random", "n_query": 15, "n_train": 45, "train_in_database": False}}
    spec.convert({name: tmp_path / name for name in ("mirflickr25k.zip", "mirflickr25k_annotations_v080.zip")},
                 spec.validate(block), tmp_path / "data/raw")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params.update(dataset="mirflickr25k", method=method, bits=16)
    params["mirflickr25k"].update(block)
    params["tags"].update(min_count=1)
    params[method].update(epochs=2, batch_size=16)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in ("split", "tags", "train", "encode", "evaluate", "plot"):
        run(f"python stages/{stage}.py", tmp_path)
    metrics = json.loads((tmp_path / "metrics/eval.json").read_text())
    assert metrics["n_query"] == 15 and metrics["n_database"] == 30
    key = {"djsrh": "map@50", "hyp2": "map@1000"}[method]  # the paper protocols' keys (HyP²'s depth on MIRFlickr)
    assert all(0 <= v <= 1 for v in metrics[key].values()) and ("t2i" in metrics[key]) == (method == "djsrh")
    assert (tmp_path / "plots/images/ranked.png").stat().st_size > 1000


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ("--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
                  "--disable-component-update --disable-sync")


def test_plots_page_works_offline(repo, tmp_path):
    """`dvc plots show` uses the repository's offline template (.dvc/config): no script from the network, and in
    headless Chromium (when installed) every line plot is drawn as SVG."""
    import re

    run("git checkout -q -- . && dvc plots show", repo)  # the tracked plot files, as the bad-input tests left them
    page = (repo / "dvc_plots/index.html").read_text()
    assert "<script src" not in page and "cdn." not in page and "vegaEmbed('#plots_pr_i2i_json'" in page
    n_plots = len(re.findall(r"vegaEmbed\('#", page))
    logged = sorted((repo / "dvclive/plots/metrics").rglob("*.tsv"))  # DVCLive's per-epoch loss, lr, images/s
    assert logged and n_plots == 2 + len(logged)  # pr/i2i, precision_at_n/i2i and each DVCLive curve
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: the page's drawing was not checked")
    url = (repo / "dvc_plots/index.html").as_uri()
    dom = run(f"{CHROMIUM} {CHROMIUM_FLAGS} --user-data-dir={tmp_path / 'a'} --dump-dom {url}", repo).stdout
    assert dom.count("<polyline") == n_plots and dom.count('class="hb-plot"') == n_plots
    assert 'class="hb-note">' not in dom  # no plot fell back to "cannot draw"
    shot = tmp_path / "page.png"
    run(f"{CHROMIUM} {CHROMIUM_FLAGS} --user-data-dir={tmp_path / 'b'} --window-size=1200,1600 "
        f"--screenshot={shot} {url}", repo)
    assert shot.stat().st_size > 20_000


TINY_TABLE = """
title: "a tiny table for the end-to-end test"
paper: "none"
source: "made up for the test"
protocol: {topk: all, zero: count}
embedded: mnist5k
digits: 3
bits: [16, 32]
groups:
  - {id: cub, dataset: cub200, label: "CUB"}
rows:
  - {id: lsh, label: "LSH", method: lsh, reported: {cub: [0.1, null]}}
  - {id: other, label: "other", reported: {cub: [0.2, 0.3]}}
"""


def test_table_run_and_show_end_to_end(repo):
    """hashbench table run --embedded queues named experiments through DVC and runs them; table show collects them
    into Markdown, PNG and JSON with ours beside the reported numbers."""
    import json

    run("git checkout -q -- .", repo)
    (repo / "tables/tiny.yaml").write_text(TINY_TABLE)
    try:
        out = run("python -m hashbench table run tiny --embedded --seeds 1 --wait", repo).stdout
        assert "2 queued, 0 already there, 0 skipped" in out
        again = run("python -m hashbench table run tiny --embedded --seeds 1", repo).stdout
        assert "0 queued, 2 already there" in again
        shown = run("python -m hashbench table show tiny --embedded --out results", repo).stdout
        lsh = next(line for line in shown.splitlines() if line.startswith("| LSH"))
        cells = [c.strip() for c in lsh.strip("|").split("|")]
        assert cells[2].endswith("(n=1)") and cells[3] == "0.100" and cells[4].endswith("(n=1)")
        assert cells[5] == "unknown"
        assert "| other | as printed | — | 0.200 | — | 0.300 |" in shown
        record = json.loads((repo / "results/tiny-embedded.json").read_text())["cells"][0]
        assert record["ours"]["experiments"] == ["tiny-emb-lsh-mnist5k-16-kall-s0"] and record["metric"] == "map@all"
        assert (repo / "results/tiny-embedded.png").stat().st_size > 10_000
    finally:
        (repo / "tables/tiny.yaml").unlink()
