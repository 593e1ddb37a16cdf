"""The lever-accuracy benchmark: one pretraining per lever and seed, a final-block probe each beside random-init
encoders, a table with deltas against the base lever and the non-inferiority verdict."""

import json
import statistics

import pytest

from blockmae.bench.accuracy import (BASE, MARGIN_PP, bench_row_name, escape_step, escape_time_x_e2e, format_accuracy,
                                     lever_overrides, run_accuracy, summarise_levers)
from blockmae.bench import PRESETS, configurations
from blockmae.report.depth_rule import MET, NOT_MET, INCONCLUSIVE

SHORT = ["train.max_steps=2", "train.batch_size=4", "data.train=digits,n=16", "train.log_every=1",
         "model.depth=4", "model.width=32", "model.heads=2", "model.decoder.width=16", "model.decoder.heads=1"]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_levers_are_the_harness_rows(preset):
    names = {r.name for r in configurations(PRESETS[preset])}
    levers = lever_overrides(preset)
    for lever in levers:
        assert bench_row_name(lever) in names
    assert levers["none"] == ("model.decoder.mask_ratio=0.0",) and BASE in levers
    # the per-stage sizing levers keep the top stage's decoder wider than the lower three
    if "light-lower" in levers:
        width = next(o for o in levers["light-lower"] if o.startswith("model.decoder.width="))
        lower, top = width.split("=")[1].strip("[]").split(",")[:3], width.split("=")[1].strip("[]").split(",")[3]
        assert all(int(w) < int(top) for w in lower)


def test_short_lever_runs_compare_every_lever_with_the_base(tmp_path):
    path = tmp_path / "levers.json"
    results = run_accuracy("tiny", ["light-lower", "light-lower-dmask0.75"], SHORT, data="digits,n=24",
                           seeds=[0, 1], runs=tmp_path / "levers", json_path=str(path), progress=False, jobs=2,
                           random_floor=2)
    written = json.loads(path.read_text())
    assert written["base"] == BASE and [r["lever"] for r in written["rows"]] == [BASE, "light-lower",
                                                                                  "light-lower-dmask0.75"]
    targets = ["digit", "direction", "speed", "mean"]
    runs = {(r["lever"], r["seed"]): r for r in written["runs"]}
    assert len(runs) == 6 and all(r["steps"] == 2 for r in runs.values())
    for row in written["rows"]:
        assert list(row["probe"]) == targets and all(0 <= v <= 1 for v in row["probe"].values())
        assert row["probe"]["mean"] == pytest.approx(sum(row["probe"][t] for t in targets[:3]) / 3)
        # the speed is the runs' own logs: the median over the logged intervals after the first (start-up)
        for seed in (0, 1):
            log = (tmp_path / "levers" / "runs" / f"{row['lever']}-seed{seed}" / "log.jsonl").read_text().splitlines()
            rates = [entry["clips_per_s"] for entry in map(json.loads, log) if entry.get("clips_per_s")]
            assert runs[row["lever"], seed]["clips_per_s"] == statistics.median(rates[1:])
        # the held-out margin is the top stage's loss below the best trivial predictor's, in % of it
        h = runs[row["lever"], 0]["held_out"]
        assert h["best_trivial"] == min(json.loads((tmp_path / "levers" / "runs" / f"{row['lever']}-seed0" /
                                                    "summary.json").read_text())["held_out"]["baselines"].values())
        assert h["margin_pct"] == pytest.approx(100 * (h["best_trivial"] - h["top"]) / h["best_trivial"])
    base = written["rows"][0]
    assert "against_base" not in base and base["delta_pp"]["mean"] == 0 and base["time_x_base"] == 1
    for row in written["rows"][1:]:
        against = row["against_base"]
        assert against["outcome"] in ("met", "not met", "inconclusive")
        assert list(against["per_target"]) == targets[:3]
        for t, d in against["per_target"].items():  # paired by seed, in pp
            assert d["values"] == pytest.approx([100 * (runs[row["lever"], s]["probe"][t] - runs[BASE, s]["probe"][t])
                                                 for s in (0, 1)])
            assert d["margin"] == MARGIN_PP
    # the levers really trained different decoders: their runs' configs differ as the levers say
    cfg = {lever: (tmp_path / "levers" / "runs" / f"{lever}-seed0" / "config.yaml").read_text().split("decoder:")[1]
           for lever in (BASE, "light-lower", "light-lower-dmask0.75")}
    assert "mask_ratio: 0.5" in cfg[BASE] and "width: 16" in cfg[BASE]
    assert "- 32" in cfg["light-lower"] and "- 64" in cfg["light-lower"]
    assert "- 0.75" in cfg["light-lower-dmask0.75"]
    # the escape step is read from the run's own log against its own best trivial predictor (or None)
    for r in written["runs"]:
        assert r["escape_step"] == escape_step(r["run_dir"], r["held_out"]["best_trivial"])
    assert all(len(row["escape_steps"]) == 2 for row in written["rows"])
    # chance: the most frequent class's share of the scored clips, per target, beside the levers in the table
    chance = written["chance"]
    assert list(chance) == targets and chance["mean"] == pytest.approx(statistics.fmean(chance[t] for t in targets[:3]))
    scored = 24  # digits,n=24: 24 clips in each split
    assert all(0 < chance[t] <= 1 and (chance[t] * scored) == pytest.approx(round(chance[t] * scored))
               for t in targets[:3])
    assert "chance" in format_accuracy(written)
    floor = written["random_floor"]
    assert floor["encoders"] == 2 and list(floor["probe"]) == targets
    assert floor["probe"]["digit"] == pytest.approx(statistics.fmean(p["digit"] for p in floor["per_encoder"]))
    assert results["rows"][0]["lever"] == BASE and written["settings"]["jobs"] == 2
    table = format_accuracy(written)
    assert "light-lower-dmask0.75" in table and "random init (2)" in table and "digits,n=24 test" in table
    assert f"against {BASE}, per target" in table
    # the E2E reference: the same preset end to end per seed, its own runs, each lever's mean probe against it
    ref = written["reference"]
    assert ref["seeds"] == [0, 1] and len(ref["runs"]) == 2 and all(r["lever"] != "e2e" for r in written["runs"])
    assert "regime: e2e" in (tmp_path / "levers" / "runs" / "e2e-seed0" / "config.yaml").read_text()
    assert ref["escape_steps"] == [escape_step(r["run_dir"], r["held_out"]["best_trivial"]) for r in ref["runs"]]
    for row in written["rows"]:
        gap = ref["levers"][row["lever"]]["mean_minus_e2e_pp"]
        assert gap["values"] == pytest.approx([100 * (runs[row["lever"], s]["probe"]["mean"]
                                                      - ref["runs"][s]["probe"]["mean"]) for s in (0, 1)])
        assert ref["levers"][row["lever"]]["escape_time_x_e2e"]["per_seed"] is None  # no --bench: no step times
    assert "e2e (reference)" in table and "against e2e" in table


def _runs(lever, values_per_seed, speed=10.0):
    return [{"lever": lever, "seed": seed, "overrides": [], "clips_per_s": speed,
             "held_out": {"losses": [1.0], "margin_pct": 1.0, "best_trivial": 1.01},
             "probe": {"a": a, "b": b, "mean": (a + b) / 2}} for seed, (a, b) in enumerate(values_per_seed)]


def test_summary_deltas_speeds_and_verdicts():
    base = [(0.50, 0.60), (0.60, 0.70), (0.55, 0.65)]
    per_run = (_runs(BASE, base, 10.0)
               + _runs("dmask0.75", [(a + 0.020, b + 0.021) for a, b in base], 20.0)  # +2 pp on both: met
               + _runs("narrow", [(a - 0.050, b - 0.051) for a, b in base], 20.0)  # -5 pp on both: not met
               + _runs("light-lower", [(a + 0.05, b - 0.05) for a, b in base[:2]] + [(0.45, 0.75)]))  # noisy
    bench = {"sim-K4-lean": {"step_s": 0.5, "time_x_e2e": 1.3}, "sim-K4-lean-dmask0.75": {"step_s": 0.25,
                                                                                           "time_x_e2e": 0.65}}
    rows = {r["lever"]: r for r in summarise_levers(per_run, [BASE, "dmask0.75", "narrow", "light-lower"], bench)}
    masked = rows["dmask0.75"]
    assert masked["delta_pp"]["a"] == pytest.approx(2.0) and masked["time_x_base"] == pytest.approx(0.5)
    assert masked["bench_time_x_base"] == pytest.approx(0.5) and masked["bench_time_x_e2e"] == 0.65
    assert masked["against_base"]["outcome"] == MET
    assert masked["against_base"]["per_target"]["b"]["mean"] == pytest.approx(2.1)
    assert rows["narrow"]["against_base"]["outcome"] == NOT_MET
    assert rows["light-lower"]["against_base"]["outcome"] == INCONCLUSIVE
    assert rows[BASE]["probe_per_seed"] == [pytest.approx(0.55), pytest.approx(0.65), pytest.approx(0.60)]


def test_unknown_lever_names_the_choices():
    with pytest.raises(SystemExit, match="dmask0.5-narrow"):
        run_accuracy("tiny", ["dmask0.9"], SHORT, progress=False)
    with pytest.raises(SystemExit, match="unknown lever"):
        run_accuracy("tiny", ["narrow"], SHORT, progress=False, base="dmask0.6")


def test_escape_step_is_the_first_logged_step_below_the_bar(tmp_path):
    # best trivial 0.80: the bar is 2 % below it, 0.784; only the top stage (last loss) counts
    rows = [{"step": 10, "losses": [0.70, 0.81]}, {"step": 20, "clips_per_s": 90.0},
            {"step": 30, "losses": [0.70, 0.785]}, {"step": 40, "losses": [0.80, 0.783]},
            {"step": 50, "losses": [0.80, 0.70]}]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert escape_step(tmp_path, 0.80) == 40
    assert escape_step(tmp_path, 0.80, pct=10) == 50
    assert escape_step(tmp_path, 0.70) is None  # never 2 % below 0.70: still on the plateau
    assert escape_step(tmp_path / "missing", 0.80) is None
    # sequential: the top stage logs no loss until its phase; those steps are not an escape (nor an error)
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"step": 10, "losses": [0.50, None]}, {"step": 20, "losses": [0.50, 0.70]}]) + "\n")
    assert escape_step(tmp_path, 0.80) == 20


def test_escape_time_counts_steps_at_each_ones_step_time():
    # the lever escapes at 1000 and 2000 steps, E2E at 500 and 1000; the lever's step costs 1.2x E2E's
    t = escape_time_x_e2e([1000, 2000], [500, 1000], 1.2, 3000)
    assert t["per_seed"] == pytest.approx([2.4, 2.4]) and t["mean"] == pytest.approx(2.4) and t["at_least"] is None
    # a seed still on the plateau counts its whole run: the mean is then a lower bound, not a measurement
    t = escape_time_x_e2e([1000, None], [500, 1000], 1.2, 3000)
    assert t["mean"] is None and t["at_least"] == pytest.approx((2.4 + 3.6) / 2)
    # E2E on the plateau, or no step times: nothing to compare
    assert escape_time_x_e2e([1000], [None], 1.2, 3000)["per_seed"] is None
    assert escape_time_x_e2e([1000], [500], None, 3000)["per_seed"] is None


def test_no_e2e_trains_no_reference(tmp_path):
    results = run_accuracy("tiny", [BASE], SHORT, data="digits,n=24", seeds=[0], runs=tmp_path, progress=False,
                           random_floor=0, e2e=False)
    assert "reference" not in results and not (tmp_path / "runs" / "e2e-seed0").exists()
    assert "e2e (reference)" not in format_accuracy(results)
