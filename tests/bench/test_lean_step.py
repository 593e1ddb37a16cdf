"""benchmarks/lean_step.py: the lean and standard steps, paired in one process, on the same inputs."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lean_step.py"


def _script():
    spec = importlib.util.spec_from_file_location("lean_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_steps_are_timed_every_round_and_the_ratio_is_of_their_medians(capsys):
    out = _script().main(["--rounds", "6", "--batch", "2", "--set", "model.depth=4", "--set", "model.width=32",
                          "--set", "model.heads=2"])
    assert [len(t) for t in out["times"].values()] == [6, 6, 6]  # lean, standard, e2e
    assert out["ratio"] == pytest.approx(out["median_s"]["lean"] / out["median_s"]["standard"])
    printed = capsys.readouterr().out
    assert "machine:" in printed and "simultaneous K=4" in printed and f"{out['ratio']:.3f}x" in printed


def test_too_few_rounds_are_refused():
    with pytest.raises(SystemExit):
        _script().main(["--rounds", "4"])
