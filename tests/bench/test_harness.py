"""The benchmark harness: quick runs produce every configuration with ratio columns; the loss check works."""

import json

import pytest
import torch

from blockmae.bench import PRESETS, configurations, first_losses_match, main, run
from blockmae.bench import steps as bench_steps
from blockmae.bench.steps import hf_loss_check
from helpers import small_config

pytest.importorskip("transformers")
SMALL = ["model.frames=4", "model.image_size=16", "model.width=48", "model.decoder.width=32"]  # the tiny preset, smaller


def test_quick_bench_reports_every_configuration_with_ratios(tmp_path):
    path = tmp_path / "bench.json"
    results = run("tiny", device="cpu", quick=True, batch=2, warmup=0, steps=1, threads=1, in_process=True,
                  sets=SMALL, json_path=str(path), progress=False)
    written = json.loads(path.read_text())
    names = [r.name for r in configurations(PRESETS["tiny"])]
    assert [r["name"] for r in written["rows"]] == names
    for row in written["rows"]:
        if row["name"].endswith("compile"):
            assert "skipped" in row  # quick mode leaves torch.compile out, and says so
            continue
        assert "error" not in row, row
        assert row["clips_per_s"] > 0 and row["step_bytes"] >= 0 and row["flops_per_step"] > 0
        assert "x_baseline" in row and row["x_baseline"] > 0
    rows = {r["name"]: r for r in written["rows"]}
    assert rows["hf"]["x_baseline"] == 1.0 and rows["extract-hf"]["x_baseline"] == 1.0
    assert rows["sim-K4-lean"]["time_x_e2e"] > 0 and len(rows["sim-K6"]["first_losses"]) == 6
    assert rows["sim-K4-lean"]["live_step_bytes"] > 0 and rows["sim-K4"]["live_step_bytes"] > 0
    # only the optimizer differs (not bit for bit: a GEMM's rounding may depend on where its buffers lie)
    assert rows["hf-adamw-unfused"]["first_losses"] == pytest.approx(rows["hf"]["first_losses"], abs=1e-6)
    assert written["loss_check"]["ok"] and written["loss_check"]["abs_diff"] <= 1e-4
    assert written["matmul"]["flop_per_s"] > 0 and written["machine"]["torch"] == torch.__version__
    assert {t["target"] for t in written["targets"]} >= {"ours e2e clips/s >= 1.3x Hugging Face, identical loss"}
    assert results["rows"][0]["name"] == "hf"


def test_each_configuration_runs_in_its_own_process(tmp_path):
    results = main(["--quick", "--configs", "hf,e2e", "--device", "cpu", "--threads", "1", "--steps", "1",
                    "--json", str(tmp_path / "b.json")] + [f"--set={s}" for s in SMALL])
    rows = {r["name"]: r for r in results["rows"]}
    assert set(rows) == {"hf", "e2e"}
    assert results["loss_check"]["ok"]
    assert rows["hf"]["hf_attn_implementation"] and rows["e2e"]["peak_bytes"] > rows["e2e"]["step_bytes"] > 0
    assert results["settings"]["in_process"] is False


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
