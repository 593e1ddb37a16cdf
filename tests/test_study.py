"""`blockmae study`: the grid, its validation, resuming and reproducibility, end to end on a small model."""

import gzip
import json

import pytest
import yaml

from blockmae.analysis.rows_file import read_rows
from blockmae.config import ConfigError, save_config
from blockmae.report.findings import measure_findings
from blockmae.study import decoder_masking_note, load_study, run_study, train_all, write_findings
from helpers import small_config


def write_study(tmp_path, **changes):
    cfg = small_config("model.partition=2", "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=4",
                       "data.train=digits,n=16")
    save_config(cfg, tmp_path / "base.yaml")
    study = {"config": str(tmp_path / "base.yaml"), "overrides": ["train.max_steps=4"],
             "grid": {"train.regime": ["e2e", "sequential"], "train.seed": [0, 1]},
             "data": ["digits,n=24", "gratings,n=36"], "random_floor": 1, "layers": False, "occlusion": False,
             "jobs": 2} | changes
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_runs_are_the_grid_in_order(tmp_path):
    study = load_study(write_study(tmp_path))
    names = [name for name, _ in study.runs()]
    assert names == ["e2e-s0", "e2e-s1", "sequential-s0", "sequential-s1"]
    assert study.runs()[3][1] == ["train.max_steps=4", "train.regime=sequential", "train.seed=1"]


def test_the_per_stage_budget_gives_each_sequential_phase_the_whole_schedule(tmp_path):
    """partition=2 in the base config: sequential trains 2 x 4 steps, each phase as long as E2E's whole run."""
    study = load_study(write_study(tmp_path, sequential_budget="per-stage"))
    runs = dict(study.runs())
    assert runs["e2e-s0"] == ["train.max_steps=4", "train.regime=e2e", "train.seed=0"]
    assert runs["sequential-s1"][-1] == "train.max_steps=8"
    from blockmae.config import load_config
    from blockmae.regimes import REGIMES

    cfg = load_config(study.config, runs["sequential-s1"])
    assert REGIMES["sequential"].phase_ends(cfg.train.max_steps, 2) == [4, 8]


@pytest.mark.parametrize("change, message", [
    ({"grids": {}}, "unknown key(s) grids"),
    ({"grid": {"train.regim": ["e2e"]}}, "train.regim"),
    ({"grid": {"train.regime": []}}, "non-empty lists"),
    ({"jobs": 0}, "jobs=0"),
    ({"random_floor": "yes"}, "random_floor='yes'"),
    ({"random_floor": -2}, "random_floor=-2"),
    ({"sequential_budget": "per-phase"}, "sequential_budget='per-phase', expected one of total, per-stage"),
    ({"interfaces": {"regimes": ["e2e"]}}, "interfaces must be a mapping with at least data"),
    ({"interfaces": {"data": "digits", "steps": 3}}, "unknown interfaces key(s) steps"),
    ({"interfaces": {"data": "digits", "regimes": ["overlap"]}}, "are not in the grid's train.regime"),
    ({"interfaces": {"data": "digits", "regimes": ["e2e"], "stitch_steps": 0}}, "one of them positive (got 0, 0)"),
])
def test_bad_study_files_are_refused_before_training(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_study(write_study(tmp_path, **change))


def test_a_study_whose_regimes_differ_in_decoder_masking_says_so(tmp_path):
    grid = {"train.regime": ["e2e", "simultaneous", "sequential"]}
    note = decoder_masking_note(load_study(write_study(tmp_path, config="tiny", grid=grid)))
    assert "e2e 0.0, simultaneous 0.5, sequential 0.0" in note and "model.decoder.mask_ratio" in note
    pinned = write_study(tmp_path, config="tiny", grid=grid,
                         overrides=["train.max_steps=4", "model.decoder.mask_ratio=0.0"])
    assert decoder_masking_note(load_study(pinned)) is None


@pytest.mark.slow
def test_study_trains_analyses_publishes_and_reruns_identically(tmp_path, single_thread):
    interfaces = {"data": "digits,n=24", "regimes": ["e2e", "sequential"], "stitch_steps": 1, "continue_steps": 1}
    # one dataset: the study is analysed three times below (analyze on several is tests/analysis/test_analyze.py's)
    path = write_study(tmp_path, interfaces=interfaces, data=["digits,n=24"])
    out, published = tmp_path / "out", tmp_path / "published"
    report = run_study(path, out, publish=published)[0]
    assert report.is_file()
    assert not (published / "metrics.jsonl").exists()  # published compressed
    rows = read_rows(published / "metrics.jsonl.gz")
    assert {r["run"] for r in rows} >= {"e2e-s0", "e2e-s1", "sequential-s0", "sequential-s1"}
    assert any(r["regime"] == "random" for r in rows)
    summaries = json.loads((published / "summaries.json").read_text())
    assert summaries["sequential-s1"]["regime"] == "sequential" and len(summaries["e2e-s0"]["held_out"]["losses"]) == 2
    # every run is scored on the same held-out clips and masks, whatever its seed: the trivial predictors agree
    assert summaries["e2e-s0"]["held_out"]["baselines"] == summaries["sequential-s1"]["held_out"]["baselines"]
    findings = (published / "findings.json").read_text()
    assert list(json.loads(findings)) == ["1", "2", "3", "4", "5", "6", "7", "8", "9"]
    assert findings == json.dumps(measure_findings(rows, summaries), indent=1)  # what the published rows determine
    assert list((published / "figures").glob("*.png"))
    assert not list(published.rglob("*.safetensors"))  # no checkpoints in what gets committed
    # the interfaces block: its rows in the metrics, findings 8 and 9 measured, its section and figures published
    assert {"stitch_probe", "continued_probe"} <= {r["metric"] for r in rows}
    verdicts = json.loads(findings)
    assert not any(verdicts[n]["verdict"].startswith("not measured") for n in ("8", "9"))
    assert (published / "figures" / "stitching.png").is_file() and (published / "figures" / "continuation.png").is_file()
    assert "Where the gap lives" in (published / "interfaces.md").read_text()
    assert 'id="interfaces"' in report.read_text()

    # A second study in a fresh directory trains again from scratch: same seeds, same numbers.
    again = tmp_path / "again"
    run_study(path, again)
    assert (again / "analysis" / "metrics.jsonl").read_bytes() == gzip.decompress(
        (published / "metrics.jsonl.gz").read_bytes())
    # Re-running in place trains nothing (every run has its summary): the training half of run_study, on its own
    before = (out / "runs" / "e2e-s0" / "log.jsonl").stat().st_mtime_ns
    assert train_all(load_study(path), out) == summaries
    assert (out / "runs" / "e2e-s0" / "log.jsonl").stat().st_mtime_ns == before


def test_findings_are_the_verdicts_the_rows_determine(tmp_path):
    """write_findings measures the rules (tests/analysis/test_findings.py drives each into every outcome) on a
    study's rows and writes findings.json and findings.md. A K=2 study: E2E and sequential, two seeds."""
    probe = {"e2e": (0.5, 0.8), "sequential": (0.6, 0.7)}
    rows, summaries = [], {}
    for regime in probe:
        for seed in (0, 1):
            run = f"{regime}-K2-s{seed}"
            for block in (1, 2):
                rows.append({"run": run, "regime": regime, "model": "vit-tiny", "K": 2, "seed": seed,
                             "dataset": "digits", "split": "test", "block": block, "layer": None,
                             "metric": "probe_acc", "target": "mean", "value": probe[regime][block - 1] + 0.01 * seed,
                             "step": None})
            summaries[run] = {"regime": regime, "seed": seed, "steps": 4, "held_out": {"data": "digits"}}
    findings = write_findings(tmp_path, rows, summaries)
    assert (tmp_path / "findings.json").read_text() == json.dumps(measure_findings(rows, summaries), indent=1)
    assert findings["2"]["verdict"] == "reproduced"  # sequential 10 pp ahead at block 1, E2E 10 pp ahead at the top
    assert findings["6"]["verdict"] == "not measured"  # sequential had E2E's total steps: not tested
    assert findings["8"]["verdict"] == findings["9"]["verdict"] == "not measured"  # no interface rows
    text = (tmp_path / "findings.md").read_text()
    assert sum(line.startswith("| ") for line in text.splitlines()) == 1 + 9 and "Holm" in text
