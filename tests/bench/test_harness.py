"""The benchmark harness: quick runs produce every configuration with ratio columns; the loss check works."""

import json
import statistics

import pytest
import torch

from blockmae.bench import PRESETS, configurations, first_losses_match, run
from blockmae.bench import steps as bench_steps
from blockmae.bench.steps import hf_loss_check
from helpers import small_config

pytest.importorskip("transformers")
SMALL = ["model.frames=4", "model.image_size=16", "model.width=48", "model.decoder.width=32"]  # the tiny preset, smaller


@pytest.mark.slow
def test_quick_bench_reports_every_configuration_with_ratios(tmp_path):
    path = tmp_path / "bench.json"
    results = run("tiny", device="cpu", quick=True, batch=2, warmup=0, steps=1, threads=1, in_process=True,
                  sets=SMALL, json_path=str(path), progress=False)
    written = json.loads(path.read_text())
    names = [r.name for r in configurations(PRESETS["tiny"])]
    assert [r["name"] for r in written["rows"]] == names
    rows = {r["name"]: r for r in written["rows"]}
    matmul = written["matmul"]
    for row in written["rows"]:
        if row["name"].endswith("compile"):
            assert "skipped" in row  # quick mode leaves torch.compile out, and says so
            continue
        assert "error" not in row, row
        # the steps asked for: 1 timed (sequential: one per phase; fitted monitors: one of each kind), after the
        # loss-check step and 1 warm-up
        (measured,) = written["runs"][row["name"]]  # one repeat: the row is its only run
        seq = row["regime"] == "sequential" and row["task"] == "train"
        fitted = "fit_step_s" in row
        assert row["batch"] == 2 and row["timed_steps"] == len(measured["step_times"]) == \
            (row["K"] if seq else 2 if fitted else 1)
        assert row["warmup"] == (1 + row["K"] if seq else 2)
        assert row["step_s"] == measured["step_s"] == pytest.approx(
            statistics.fmean(row["phase_step_s"]) if seq else
            row["off_step_s"] + 0.1 * row["fit_step_s"] if fitted else statistics.median(measured["step_times"]))
        # every derived column is the ratio of the stored numbers it names
        base = rows["extract-hf" if row["task"] == "extract" else "hf"]
        assert row["clips_per_s"] == pytest.approx(2 / row["step_s"])
        assert row["x_baseline"] == pytest.approx(row["clips_per_s"] / base["clips_per_s"])
        assert row["step_bytes"] == max(row["peak_bytes"] - row["resting_bytes"], 0)
        assert row["live_x_baseline"] == pytest.approx(row["live_step_bytes"] / base["live_step_bytes"])
        train = row["task"] == "train"
        assert row["time_x_e2e"] == (pytest.approx(row["step_s"] / rows["e2e"]["step_s"]) if train else None)
        assert row["time_x_e2e_monitors"] == (
            pytest.approx(row["step_s"] / rows["e2e-K4-monitors"]["step_s"]) if train else None)
        assert row["mem_x_e2e"] == (
            pytest.approx(row["live_step_bytes"] / rows["e2e"]["live_step_bytes"]) if train else None)
        assert row["mfu"] == pytest.approx(row["flops_per_step"] / row["step_s"] / matmul["flop_per_s"])
        assert len(row["first_losses"]) == row["K"]
    assert rows["hf"]["x_baseline"] == 1.0 and rows["extract-hf"]["x_baseline"] == 1.0
    assert len(rows["sim-K6"]["first_losses"]) == 6
    # the same forward before any update: the memory-lean step reports the standard step's losses, and with every
    # hidden tubelet decoded, the monitors and the first sequential phase too (to rounding, as below)
    assert rows["sim-K4-lean"]["first_losses"] == pytest.approx(rows["sim-K4"]["first_losses"], abs=1e-6)
    full = rows["sim-K4-lean-dmask0"]["first_losses"]
    assert rows["e2e-K4-monitors"]["first_losses"] == pytest.approx(full, abs=1e-6)
    assert rows["sim-K4"]["first_losses"] != pytest.approx(full, abs=1e-6)  # the default decodes half of them
    seq_first, *seq_rest = rows["seq-K4"]["first_losses"]
    assert seq_first == pytest.approx(full[0], abs=1e-6) and seq_rest == [None, None, None]  # phase 0: stage 1 only
    # only the optimizer differs (not bit for bit: a GEMM's rounding may depend on where its buffers lie)
    assert rows["hf-adamw-unfused"]["first_losses"] == pytest.approx(rows["hf"]["first_losses"], abs=1e-6)
    assert rows["e2e-adamw-unfused"]["first_losses"] == pytest.approx(rows["e2e"]["first_losses"], abs=1e-6)
    # FLOPs and live memory as the configurations imply: the same work counts the same, decoder masking
    # (fewer hidden tubelets decoded) and no_grad extraction less, more stages more
    flops = {name: row["flops_per_step"] for name, row in rows.items() if "flops_per_step" in row}
    assert flops["sim-K4"] == flops["sim-K4-lean"] < flops["sim-K6"] == flops["sim-K6-lean"]
    assert flops["sim-K4-lean-dmask0"] == flops["e2e-K4-monitors"]
    assert flops["sim-K4-lean-dmask0.75"] < flops["sim-K4-lean"] < flops["sim-K4-lean-dmask0"]  # default 0.5
    assert flops["extract"] == flops["extract-inference"] == flops["extract-hf"]
    live = {name: row["live_step_bytes"] for name, row in rows.items() if "live_step_bytes" in row}
    assert live["sim-K4-lean-dmask0.75"] < live["sim-K4-lean"] < live["sim-K4-lean-dmask0"]
    assert live["sim-K4"] < live["sim-K6"] and live["extract"] < live["e2e"]
    # the loss check compares exactly the stored first losses
    check = written["loss_check"]
    assert check["hf"] == rows["hf"]["first_losses"][0] and check["ours"] == rows["e2e"]["first_losses"][0]
    assert check["abs_diff"] == pytest.approx(abs(check["hf"] - check["ours"]))
    assert check["ok"] and check["abs_diff"] <= 1e-4
    assert matmul["n"] == 1024 and matmul["flop_per_s"] == pytest.approx(2 * 1024 ** 3 / matmul["seconds"])
    assert written["machine"]["torch"] == torch.__version__
    targets = {t["target"]: t for t in written["targets"]}
    assert targets["ours e2e clips/s >= 1.0x Hugging Face, first-step loss within tolerance"]["value"] == \
        rows["e2e"]["x_baseline"]
    monitors = targets["e2e-K4-monitors step time <= 1.2x e2e"]
    assert monitors["value"] == pytest.approx(rows["e2e-K4-monitors"]["step_s"] / rows["e2e"]["step_s"])
    assert "e2e-K4-monitors-every4 step time <= 1.2x e2e" in targets
    assert "e2e-K4-fitted-monitors step time <= 1.2x e2e" in targets
    step = targets["memory-lean sim K=4 step time <= standard sim K=4"]
    assert step["met"] == (rows["sim-K4-lean"]["step_s"] <= rows["sim-K4"]["step_s"])
    lean = targets["memory-lean sim K=4 peak <= 0.6x standard sim K=4"]
    assert lean["value"] == pytest.approx(live["sim-K4-lean"] / live["sim-K4"])
    assert lean["met"] == (lean["value"] <= 0.6)
    assert results["rows"][0]["name"] == "hf"


def test_unknown_configuration_names_the_choices():
    with pytest.raises(SystemExit, match="sim-K4-lean"):
        run("tiny", configs="sim-K5", quick=True, progress=False)


def test_hf_loss_check_agrees_for_identical_weights():
    check = hf_loss_check(small_config(), batch=2)
    assert check["ok"] and check["abs_diff"] <= 1e-4


def test_hf_loss_check_catches_different_weights(monkeypatch):
    twin = bench_steps.hf_twin

    def perturbed(model):
        hf = twin(model)
        with torch.no_grad():
            hf.decoder.head.bias.add_(0.1)
        return hf

    monkeypatch.setattr(bench_steps, "hf_twin", perturbed)
    check = hf_loss_check(small_config(), batch=2)
    assert not check["ok"] and check["abs_diff"] > 1e-4


def test_first_losses_match_uses_the_tolerance():
    assert first_losses_match(1.0, 1.0 + 5e-5)["ok"]
    bad = first_losses_match(1.0, 1.001)
    assert not bad["ok"] and bad["abs_diff"] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="partition=1"):
        hf_loss_check(small_config("model.partition=2"))


def test_monitors_every_mth_step_are_timed_as_the_mean_over_a_period():
    from blockmae.bench.worker import measure

    spec = {"name": "every2", "impl": "ours", "task": "train", "regime": "e2e", "K": 2, "config": "tiny",
            "overrides": SMALL + ["train.monitor_every=2"], "batch": 2, "warmup": 1, "steps": 4, "seed": 0,
            "device": "cpu", "threads": 1, "flops": False, "timer": "cpu", "live": False}
    row = measure(spec)
    assert row["monitor_step_s"] > 0 and row["off_step_s"] > 0
    assert row["step_s"] == pytest.approx((row["monitor_step_s"] + row["off_step_s"]) / 2)
    assert len(row["first_losses"]) == 2 and None not in row["first_losses"]  # the loss-check step has its monitor


def test_fitted_monitors_are_timed_as_training_plus_their_share_of_fitting():
    from blockmae.bench.worker import measure

    spec = {"name": "fitted", "impl": "ours", "task": "train", "regime": "e2e", "K": 2, "config": "tiny",
            "overrides": SMALL + ["train.monitor_every=0", "train.monitor_fit_steps=10", "train.max_steps=40"],
            "batch": 2, "warmup": 2, "steps": 4, "seed": 0, "device": "cpu", "threads": 1, "flops": False,
            "timer": "cpu", "live": False}
    row = measure(spec)
    assert row["fit_share"] == 0.25 and row["fit_step_s"] > 0 and row["off_step_s"] > 0
    assert row["step_s"] == pytest.approx(row["off_step_s"] + 0.25 * row["fit_step_s"])
    assert row["first_losses"][0] is None and row["first_losses"][1] is not None  # monitors never train in training
