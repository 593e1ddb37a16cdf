"""`blockmae bench` from the command line: help with an example, and a quick run that writes JSON."""

import contextlib
import io
import json
import subprocess
import sys

import pytest

from blockmae.cli import EXAMPLES, main

pytest.importorskip("transformers")
SMALL = ["model.frames=4", "model.image_size=16", "model.width=48", "model.decoder.width=32"]  # the tiny preset, smaller


@pytest.fixture(scope="module")
def quick_cli_bench(tmp_path_factory):
    """`blockmae bench --quick --configs hf,e2e` (each configuration in a worker process of its own), run once for
    this file's tests: (what it printed, the results it wrote to --json, that JSON's path)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["bench", "--quick", "--configs", "hf,e2e", "--device", "cpu", "--threads", "1", "--steps", "1",
              "--json", str(path)] + [f"--set={s}" for s in SMALL])
    return out.getvalue(), json.loads(path.read_text()), path


def test_bench_help_lists_its_options_and_an_example(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--preset", "--configs", "--json", "--accuracy", "--levers", "--threads"):
        assert flag in out
    assert "example:" in out and EXAMPLES["bench"].split("    |")[0] in out


@pytest.mark.slow
def test_top_level_help_lists_bench_without_importing_torch():
    code = ("import sys; from blockmae.cli import build_parser; p = build_parser(); "
            "print('bench' in p.format_help(), 'blockmae.bench.worker' in sys.modules, 'blockmae.bench.steps' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False"]  # the parser comes from bench.harness, which imports no torch


@pytest.mark.slow
def test_quick_bench_from_the_cli_writes_json_with_the_loss_check(quick_cli_bench):
    out, results, path = quick_cli_bench
    assert [r["name"] for r in results["rows"]] == ["hf", "e2e"]
    hf, e2e = results["rows"]
    check = results["loss_check"]
    assert check["hf"] == hf["first_losses"][0] and check["ours"] == e2e["first_losses"][0]
    assert check["ok"] and check["abs_diff"] <= 1e-4
    s = results["settings"]
    assert (s["batch"], s["warmup"], s["steps"]) == (4, 1, 1)  # --quick: batch <= 4, 1 warm-up; --steps 1
    for row in (hf, e2e):
        assert row["batch"] == 4 and row["timed_steps"] == 1 and row["threads"] == 1
        assert row["clips_per_s"] == pytest.approx(4 / row["step_s"])
        assert row["step_bytes"] == max(row["peak_bytes"] - row["resting_bytes"], 0)
    assert e2e["x_baseline"] == pytest.approx(e2e["clips_per_s"] / hf["clips_per_s"]) and hf["x_baseline"] == 1.0
    assert results["settings"]["in_process"] is False  # each configuration in its own worker process
    assert "loss check" in out and "OK" in out and f"wrote {path}" in out


@pytest.mark.slow
def test_each_configuration_runs_in_its_own_process(quick_cli_bench):
    _, results, _ = quick_cli_bench
    rows = {r["name"]: r for r in results["rows"]}
    assert set(rows) == {"hf", "e2e"}
    assert results["loss_check"]["ok"]
    assert rows["hf"]["hf_attn_implementation"] and rows["e2e"]["peak_bytes"] > rows["e2e"]["step_bytes"] > 0
    assert rows["e2e"]["step_bytes"] == rows["e2e"]["peak_bytes"] - rows["e2e"]["resting_bytes"]
    assert results["settings"]["in_process"] is False


@pytest.mark.parametrize("argv", [["blockmae", "bench", "--preset", "tiny"], ["benchmarks/bench.py", "--preset", "tiny"]])
def test_the_recorded_command_names_bench_once(monkeypatch, argv):
    from blockmae.bench.publish import command_line

    monkeypatch.setattr(sys, "argv", argv)
    assert command_line() == "blockmae bench --preset tiny"
