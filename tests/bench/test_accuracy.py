"""The lever-accuracy benchmark: one pretraining per lever, a final-block probe each, a table with deltas."""

import json
import statistics

import pytest

from blockmae.bench.accuracy import bench_row_name, format_accuracy, lever_overrides, run_accuracy, summarise_levers
from blockmae.bench import PRESETS, configurations

SHORT = ["train.max_steps=2", "train.batch_size=4", "data.train=digits,n=16", "train.log_every=1",
         "model.depth=4", "model.width=32", "model.heads=2", "model.decoder.width=16", "model.decoder.heads=1"]


def test_levers_are_the_harness_rows():
    names = {r.name for r in configurations(PRESETS["tiny"])}
    for lever, overrides in lever_overrides("tiny").items():
        assert bench_row_name(lever) in names
        # no lever is the paper's decoders (no decoder masking), the others set their own ratio
        assert any(o.startswith("model.decoder.mask_ratio=") for o in overrides)
    assert lever_overrides("tiny")["none"] == ("model.decoder.mask_ratio=0.0",)


def test_short_lever_run_gives_one_row_per_lever(tmp_path):
    path = tmp_path / "levers.json"
    results = run_accuracy("tiny", ["dmask0.75", "narrow"], SHORT, data="digits,n=24", runs=tmp_path / "runs",
                           json_path=str(path), progress=False)
    written = json.loads(path.read_text())
    assert [r["lever"] for r in written["rows"]] == ["none", "dmask0.75", "narrow"]  # no lever is always the base
    targets = ["digit", "direction", "speed", "mean"]
    none, dmask, narrow = written["rows"]
    for row, run in zip(written["rows"], written["runs"]):
        assert list(row["probe"]) == targets and all(0 <= v <= 1 for v in row["probe"].values())
        assert row["probe"]["mean"] == pytest.approx(sum(row["probe"][t] for t in targets[:3]) / 3)
        # the speed is the run's own log: the median over the logged intervals after the first (start-up)
        assert run["lever"] == row["lever"] and run["steps"] == 2
        log = (tmp_path / "runs" / f"{row['lever']}-seed0" / "log.jsonl").read_text().splitlines()
        rates = [entry["clips_per_s"] for entry in map(json.loads, log) if entry.get("clips_per_s")]
        assert len(rates) == 2 and row["clips_per_s"] == run["clips_per_s"] == statistics.median(rates[1:])
        assert row["time_x_none"] == pytest.approx(none["clips_per_s"] / row["clips_per_s"])
    assert none["delta_pp"]["mean"] == 0 and none["time_x_none"] == 1
    assert dmask["overrides"] == ["model.decoder.mask_ratio=0.75"] and narrow["overrides"] == ["model.decoder.mask_ratio=0.0", "model.decoder.width=32"]
    # the levers really trained different models: their runs' configs and held-out losses differ
    cfgs = {r["lever"]: (tmp_path / "runs" / f"{r['lever']}-seed0" / "config.yaml").read_text() for r in written["rows"]}
    assert "mask_ratio: 0.75" in cfgs["dmask0.75"] and "mask_ratio: 0.0" in cfgs["none"]
    assert "width: 32" in cfgs["narrow"].split("decoder:")[1] and "width: 16" in cfgs["none"].split("decoder:")[1]
    assert len({tuple(r["held_out_losses"]) for r in written["rows"]}) == 3
    assert written["settings"]["max_steps"] == 2 and results["rows"][0]["lever"] == "none"
    table = format_accuracy(written)
    assert "dmask0.75" in table and "d mean pp" in table and "digits,n=24 test" in table


def test_summary_deltas_and_bench_columns():
    def run(lever, seed, mean, speed):
        return {"lever": lever, "seed": seed, "overrides": [], "clips_per_s": speed, "held_out_losses": [1.0],
                "probe": {"digit": mean, "mean": mean}}

    per_run = [run("none", 0, 0.50, 10.0), run("none", 1, 0.60, 10.0), run("dmask0.5", 0, 0.52, 20.0),
               run("dmask0.5", 1, 0.56, 20.0)]
    bench = {"sim-K4-lean-dmask0": {"step_s": 0.5, "time_x_e2e": 2.0}, "sim-K4-lean": {"step_s": 0.25, "time_x_e2e": 1.0}}
    none, lever = summarise_levers(per_run, ["none", "dmask0.5"], bench)
    assert none["probe"]["mean"] == pytest.approx(0.55) and lever["probe"]["mean"] == pytest.approx(0.54)
    assert lever["delta_pp"]["mean"] == pytest.approx(-1.0) and lever["time_x_none"] == pytest.approx(0.5)
    assert lever["bench_time_x_none"] == pytest.approx(0.5) and lever["bench_time_x_e2e"] == 1.0
    assert lever["probe_per_seed"] == [0.52, 0.56]


def test_unknown_lever_names_the_choices():
    with pytest.raises(SystemExit, match="dmask0.5-narrow"):
        run_accuracy("tiny", ["dmask0.9"], SHORT, progress=False)
