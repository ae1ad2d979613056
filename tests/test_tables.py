"""Table specs (tables/*.yaml), paper presets (presets/*.yaml), the experiment configs they map to, and the
collection / rendering of a table from `dvc exp show` data (no DVC run here; the end-to-end run is in
test_pipeline.py)."""
from pathlib import Path

import pytest
import yaml

from hashbench import experiment, presets, table_report, table_runs, tables
from hashbench.embedded import EMBEDDED
from hashbench.errors import HashbenchError
from hashbench.methods import REGISTRY
from hashbench.protocol import map_key

REPO = Path(__file__).resolve().parents[1]
TABLES, PRESETS = REPO / "tables", REPO / "presets"
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SEED_TABLES = {"wsdhq", "gpq-cifar10", "djsrh-table1", "djsrh-table2", "dnnh-cub", "dnnh-dogs", "hyp2-flickr-nus",
               "hyp2-voc"}


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(REPO)  # specs and presets are read relative to the repository root, as the CLI does


def test_every_seed_table_is_listed(capsys):
    from hashbench.cli import main

    assert set(tables.names()) == SEED_TABLES
    assert main(["table", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SEED_TABLES)


@pytest.mark.parametrize("name", sorted(SEED_TABLES))
def test_every_cell_maps_to_a_valid_experiment_config(name):
    """Real and embedded configs pass the stages' own validation; only listed pending names are let through."""
    table = tables.load(name)
    for reason in tables.check(table, PARAMS):
        kind, what = reason.split()
        assert what in (tables.PENDING_METHODS if kind == "method" else tables.PENDING_DATASETS)
    for embedded in (False, True):
        exps = tables.experiments(table, embedded)
        cells = [c for e in exps for c in e.cells]
        expected = [(r.id, g.id, b) for r in table.rows if r.method for g in table.groups for b in table.bits]
        assert sorted(cells) == sorted(expected)  # every measured cell has exactly one experiment
        for exp in exps:
            assert exp.overrides["method"] in REGISTRY or exp.skip
            assert (exp.overrides["dataset"] == table.embedded) == embedded
            assert exp.overrides["evaluate.protocol"] == "custom"
        assert len({e.base for e in exps}) == len(exps)


@pytest.mark.parametrize("name", sorted(SEED_TABLES))
def test_every_reported_number_has_a_source(name):
    table = tables.load(name)
    assert table.source and table.paper
    for row in table.rows:
        assert set(row.reported) <= {g.id for g in table.groups}
        for values in row.reported.values():
            assert len(values) == len(table.bits)
            if any(v is not None for v in values):
                assert row.source


def test_table_protocols_match_the_presets():
    """Where a cell's method has a paper preset on the cell's dataset, the table's protocol is the preset's."""
    for name in SEED_TABLES:
        table = tables.load(name)
        for row in table.rows:
            for group in table.groups:
                preset = row.method and presets.find(row.method, group.dataset)
                if preset:
                    topk = preset.params["evaluate.topk"]
                    assert (topk or "all", preset.params["evaluate.zero"]) == \
                        (group.protocol["topk"], group.protocol["zero"]), (name, group.id)


def test_reported_numbers_the_issue_names():
    dnnh = tables.load("dnnh-cub").rows[1]
    assert dnnh.method == "dnnh" and dnnh.reported["cub"] == [0.6384, 0.7059]
    hyp2 = {g.id: g.protocol["topk"] for g in tables.load("hyp2-flickr-nus").groups}
    voc = {g.id: g.protocol["topk"] for g in tables.load("hyp2-voc").groups}
    assert hyp2 == {"flickr": 1000, "nus": 5000} and voc == {"voc07": 5011, "voc12": 5717}


def test_djsrh_table1_rows_are_the_papers_cumulative_configurations():
    rows = {r.id: r.params for r in tables.load("djsrh-table1").rows}
    assert list(rows) == ["djsrh-1", "djsrh-2", "djsrh-3", "djsrh-4", "djsrh-5", "djsrh", "djsrh-6"]
    base = {"djsrh.eta": 0.0, "djsrh.mu": 1.0, "djsrh.lambda1": 0.0, "djsrh.lambda2": 0.0}
    for rid, affinity in (("djsrh-1", "image"), ("djsrh-2", "text"), ("djsrh-3", "joint")):
        assert rows[rid] == {"djsrh.affinity": affinity, **base}
    assert rows["djsrh-4"] == {**rows["djsrh-3"], "djsrh.eta": 0.4}
    assert rows["djsrh-5"] == {**rows["djsrh-4"], "djsrh.mu": 1.5}
    assert rows["djsrh"] == {**rows["djsrh-5"], "djsrh.lambda1": 0.1, "djsrh.lambda2": 0.1}
    assert rows["djsrh-6"] == {**rows["djsrh"], "djsrh.alpha_schedule": "fixed"}


@pytest.mark.parametrize("name", presets.names(PRESETS))
def test_presets_are_valid_configs(name):
    preset = presets.load(name)
    params = experiment.apply(PARAMS, {**preset.overrides(), "bits": 32 if preset.method != "wsdhq" else 16})
    reason = experiment.check(params, tables.PENDING_METHODS, tables.PENDING_DATASETS)
    assert reason is None
    assert all(preset.sources[k] for k in (*preset.params, *preset.pending))
    assert all(preset.reasons[k] for k in preset.pending) and not preset.blocking
    assert not set(preset.params) & set(preset.pending)
    assert preset.params["device"] == "cuda" and preset.params[f"{preset.method}.augment"] in ("paper", "paper_test")
    schema = REGISTRY[preset.method].schema  # nothing pending that the method can express by now
    assert not [k for k in preset.pending if k.split(".", 1)[1] in schema]


def test_presets_fix_the_known_gaps():
    assert presets.load("dnnh-cub200").params["dnnh.lr"] == 0.001
    assert presets.load("gpq-cifar10").pending["gpq.weights"].endswith("ImageNet_pretrained.mat")
    wsdhq = presets.load("wsdhq-nuswide")
    assert wsdhq.params["wsdhq.lr"] == 0.0003 and wsdhq.params["wsdhq.lr_step"] == 300
    assert wsdhq.params["wsdhq.iterations"] == 1500 and wsdhq.params["tags.source"] == "official"
    assert presets.load("wsdhq-mirflickr25k").params["wsdhq.iterations"] == 800
    assert presets.load("wsdhq-mirflickr25k").params["mirflickr25k.split"] == {"protocol": "lists", "format": "wsdhq"}
    betas = {d: presets.load(f"djsrh-{d}").params["djsrh.beta"] for d in ("wikipedia", "mirflickr25k-dcmh",
                                                                            "nuswide-tc10")}
    assert betas == {"wikipedia": 0.3, "mirflickr25k-dcmh": 0.9, "nuswide-tc10": 0.6}
    assert presets.load("djsrh-nuswide-tc10").params["djsrh.feature_source"] == "backbone"
    wiki = presets.load("djsrh-wikipedia").params
    assert wiki["djsrh.image_trainable"] == "classifier" and wiki["djsrh.augment"] == "paper_test"
    assert presets.load("hyp2-mirflickr25k").params["mirflickr25k.subset"] == "labelled"
    for name in ("hyp2-voc2007", "hyp2-voc2012"):
        params = presets.load(name).params
        assert (params["hyp2.backbone"], params["hyp2.input_size"], params["hyp2.lr"]) == ("inception_v3", 448, 0.02)


def test_hyp2_presets_carry_each_datasets_retrieval_depth():
    """HyP²'s R per dataset (H:config.py): MIRFlickr 1,000, NUS-WIDE 5,000, VOC2007 5,011, VOC2012 5,717."""
    depth = {d: presets.load(f"hyp2-{d}").params["evaluate.topk"] for d in ("mirflickr25k", "nuswide", "voc2007",
                                                                              "voc2012")}
    assert depth == {"mirflickr25k": 1000, "nuswide": 5000, "voc2007": 5011, "voc2012": 5717}


def test_loader_refuses_bad_specs(tmp_path):
    good = yaml.safe_load((TABLES / "dnnh-cub.yaml").read_text())
    for change, message in [
        ({"rows": [{"id": "x", "label": "X", "method": "dnnh", "reported": {"cub": [0.5]}}]}, "must list 2 numbers"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"embedded": "cifar10"}, "embedded: 'cifar10' is not allowed"),
        ({"protocol": {"topk": 0}}, "protocol.topk: 0 is not allowed"),
    ]:
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**good, **change}))
        with pytest.raises(HashbenchError, match=message):
            tables.load("bad", tmp_path)
    spec = {**good, "rows": [{"id": "r", "label": "R", "method": "nope", "reported": {}}]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(HashbenchError, match="method: 'nope' is not allowed"):
        tables.check(tables.load("bad", tmp_path), PARAMS)


def test_preset_loader_requires_a_source_per_value(tmp_path):
    data = yaml.safe_load((PRESETS / "dnnh-cub200.yaml").read_text())
    del data["sources"]["dnnh.lr"]
    (tmp_path / "dnnh-cub200.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(HashbenchError, match="dnnh.lr has no source"):
        presets.load("dnnh-cub200", tmp_path)
    data = yaml.safe_load((PRESETS / "dnnh-cub200.yaml").read_text())
    del data["reasons"]["dnnh.normalize"]
    (tmp_path / "dnnh-cub200.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(HashbenchError, match="pending dnnh.normalize has no reason"):
        presets.load("dnnh-cub200", tmp_path)


def test_dvc_args_are_yaml_scalars():
    base = {"a": {"b": 1}, "c": False, "d": 1.0, "e": "x", "f": 1, "s": {"split": {"protocol": "quota", "q": 100}}}
    args = experiment.dvc_args({"a.b": None, "c": True, "d": 0.0001, "e": "image", "f": 64, "g": 2}, base)
    assert args == ["-S", "a.b=null", "-S", "c=true", "-S", "d=0.0001", "-S", "e=image", "-S", "f=64", "-S", "+g=2"]
    block = experiment.dvc_args({"s.split": {"protocol": "lists", "format": "wsdhq"}}, base)
    assert block == ["-S", "~s.split.q", "-S", "s.split.protocol=lists", "-S", "+s.split.format=wsdhq"]
    assert experiment.apply(base, {"s.split": {"protocol": "lists"}})["s"]["split"] == {"protocol": "lists"}
    assert experiment.apply({"x": {"y": 1}}, {"x.z": 2, "w.v": 3}) == {"x": {"y": 1, "z": 2}, "w": {"v": 3}}


def test_embedded_defaults_on_a_real_dataset_warn_with_the_preset():
    real = experiment.apply(PARAMS, {"method": "dnnh", "dataset": "cub200"})
    assert presets.advice(real, frozenset(EMBEDDED)).startswith(
        "warning: dnnh on cub200 runs the embedded defaults (backbone smallcnn, epochs 40, lr 0.01); use preset "
        "dnnh-cub200")
    assert presets.advice(experiment.apply(PARAMS, {"method": "dnnh", "dataset": "mnist5k"}), EMBEDDED) is None
    preset = presets.load("dnnh-cub200")
    applied = experiment.apply(PARAMS, preset.overrides())
    assert "differ" not in presets.advice(applied, EMBEDDED)  # only the pending keys are named
    tweaked = experiment.apply(applied, {"dnnh.epochs": 10})
    assert "1 value(s) differ from the preset (dnnh.epochs)" in presets.advice(tweaked, EMBEDDED)


def test_train_stage_prints_the_warning_once_before_anything_else(tmp_path):
    """The train stage itself: one warning line naming the preset, before it opens the data (absent here, so the
    run stops right after with its one error line)."""
    from test_pipeline import copy_project, run

    copy_project(tmp_path)
    params = experiment.apply(PARAMS, {"method": "dnnh", "dataset": "cub200"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run("python stages/train.py", tmp_path, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 2 and lines[1].startswith("error: "), proc.stderr
    assert lines[0] == ("warning: dnnh on cub200 runs the embedded defaults (backbone smallcnn, epochs 40, lr 0.01); "
                        "use preset dnnh-cub200: hashbench preset run dnnh-cub200")


def _run(name, overrides, value, state="success"):
    params = experiment.apply(PARAMS, overrides)
    return table_runs.Run(name, state, params, {map_key(None, "count"): {"i2i": value}})


def test_show_renders_ours_beside_the_paper_and_never_fills_missing_cells():
    table = tables.load("dnnh-cub")
    exps = tables.experiments(table, embedded=True)
    e16, e64 = exps
    runs = {e16.name(0): _run(e16.name(0), {**e16.overrides, "seed": 0}, 0.61),
            e16.name(1): _run(e16.name(1), {**e16.overrides, "seed": 1}, 0.63),
            e64.name(0): _run(e64.name(0), {**e64.overrides, "seed": 0, "bits": 32}, 0.9)}  # stale: made at 32 bits
    metric = {g.id: (g.metric, g.direction) for g in table.groups}
    collected = table_runs.collect(exps, runs, metric.__getitem__)
    records = table_report.finish(table_report.cells(table, collected), embedded=True)
    text = table_report.markdown(table, records, True, "cmd")
    dnnh = next(line for line in text.splitlines() if line.startswith("| DNNH-style"))
    assert dnnh.split(" | ")[2:6] == ["0.6200 ± 0.0141 (n=2)", "0.6384", "missing, 1 stale (config changed since)",
                                      "0.7059 |"]
    assert "| baseline | " in text and "0.5137" in text
    real = table_runs.collect(tables.experiments(table, embedded=False), runs, metric.__getitem__)
    assert all(not cell["values"] for cell in real.values())  # embedded runs never count as the real table's cells
    measured = table_report.finish(table_report.cells(table, collected), embedded=False)
    assert measured[2]["diff"] == pytest.approx(0.62 - 0.6384)  # the difference, where both numbers exist


def _blocked_presets(tmp_path):
    """A copy of presets/ whose hyp2-voc2007 waits for a (pretend) blocking key."""
    folder = tmp_path / "presets"
    folder.mkdir()
    for path in PRESETS.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if path.stem == "hyp2-voc2007":
            data.update(pending={"hyp2.weights": "x.mat"}, blocking=["hyp2.weights"], reasons={"hyp2.weights": "test"})
            data["sources"]["hyp2.weights"] = "test"
        (folder / path.name).write_text(yaml.safe_dump(data, allow_unicode=True))
    return folder


def test_pending_rows_are_shown_as_pending(tmp_path):
    table = tables.load("hyp2-voc")
    metric = {g.id: (g.metric, g.direction) for g in table.groups}.__getitem__
    for folder, hyp2 in ((PRESETS, "missing"), (_blocked_presets(tmp_path), "pending: preset hyp2-voc2007 needs "
                                                                               "hyp2.weights")):
        collected = table_runs.collect(tables.experiments(table, embedded=False, folder=folder), {}, metric)
        status = {r["row"]: r["status"] for r in table_report.cells(table, collected) if r["group"] == "voc07"}
        assert status["dsh"] == "missing"  # a registered baseline with its preset: runnable, not run yet
        assert status["hyp2"].startswith(hyp2)
        assert status["olah"] == "reported only"


def test_parse_show_reads_names_states_params_and_metrics():
    rows = [{"rev": "workspace", "experiments": None},
            {"rev": "abc", "experiments": [
                {"name": "t-a-s0", "executor": {"state": "success"},
                 "revs": [{"name": "t-a-s0", "data": {"params": {"params.yaml": {"data": {"bits": 16}}},
                                                       "metrics": {"metrics/eval.json": {"data": {"map@50": {}}}}}}]},
                {"name": "t-b-s0", "executor": {"state": "failed"}, "revs": [{"name": "t-b-s0", "data": {}}]}]}]
    runs = table_runs.parse_show(rows)
    assert runs["t-a-s0"].params == {"bits": 16} and runs["t-a-s0"].metrics == {"map@50": {}}
    assert runs["t-b-s0"].state == "failed"


def test_preset_run_writes_every_value_and_a_later_value_wins(capsys):
    from hashbench.cli import main

    assert main(["preset", "run", "dnnh-cub200", "--dry-run", "-S", "dnnh.epochs=10"]) == 0
    cmd = capsys.readouterr().out.split()
    assert cmd[:3] == ["dvc", "exp", "run"] and "preset=dnnh-cub200" in cmd and "dnnh.lr=0.001" in cmd
    assert "dnnh.epochs=10" in cmd and "dnnh.epochs=4001" not in cmd and "device=cuda" in cmd
    assert main(["preset", "run", "hyp2-voc2007", "--dry-run"]) == 0  # Inception-v3 at 448 exists now
    assert "hyp2.backbone=inception_v3" in capsys.readouterr().out.split()


def test_preset_run_refuses_a_blocked_preset(tmp_path, monkeypatch, capsys):
    from hashbench.cli import main

    _blocked_presets(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["preset", "run", "hyp2-voc2007", "--dry-run"]) == 2
    assert "needs hyp2.weights, which hashbench lacks yet" in capsys.readouterr().err


def test_paper_protocol_takes_the_datasets_depth_from_its_preset():
    from hashbench.protocol import paper

    hyp2 = REGISTRY["hyp2"].preset  # what the evaluate stage passes: the class's, then the dataset's preset
    assert paper(hyp2, presets.find("hyp2", "mirflickr25k").params) == {"topk": 1000, "zero": "count"}
    depth = {d: paper(hyp2, presets.find("hyp2", d).params)["topk"] for d in ("nuswide", "voc2007", "voc2012")}
    assert depth == {"nuswide": 5000, "voc2007": 5011, "voc2012": 5717}
    assert presets.find("hyp2", "mnist5k-tags") is None and paper(hyp2, None) == hyp2  # embedded: the class's
    assert paper({"topk": "all", "zero": "count"}, presets.load("dnnh-cub200").params)["topk"] == "all"
