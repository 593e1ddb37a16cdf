"""`blockmae bench` from the command line: help with an example, and a quick run that writes JSON."""

import json
import subprocess
import sys

import pytest

from blockmae.cli import EXAMPLES, main

pytest.importorskip("transformers")
SMALL = ["model.frames=4", "model.image_size=16", "model.width=48", "model.decoder.width=32"]


def test_bench_help_lists_its_options_and_an_example(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--preset", "--configs", "--json", "--accuracy", "--levers", "--threads"):
        assert flag in out
    assert "example:" in out and EXAMPLES["bench"].split("    |")[0] in out


def test_top_level_help_lists_bench_without_importing_torch():
    code = ("import sys; from blockmae.cli import build_parser; p = build_parser(); "
            "print('bench' in p.format_help(), 'blockmae.bench.worker' in sys.modules, 'blockmae.bench.steps' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False"]  # the parser comes from bench.harness, which imports no torch


def test_quick_bench_from_the_cli_writes_json_with_the_loss_check(tmp_path, capsys):
    path = tmp_path / "bench.json"
    main(["bench", "--quick", "--configs", "hf,e2e", "--device", "cpu", "--threads", "1", "--steps", "1",
          "--json", str(path)] + [f"--set={s}" for s in SMALL])
    out = capsys.readouterr().out
    results = json.loads(path.read_text())
    assert [r["name"] for r in results["rows"]] == ["hf", "e2e"]
    assert results["loss_check"]["ok"] and results["loss_check"]["abs_diff"] <= 1e-4
    assert all(r["clips_per_s"] > 0 and r["peak_bytes"] > 0 for r in results["rows"])
    assert results["settings"]["in_process"] is False  # each configuration in its own worker process
    assert "loss check" in out and "OK" in out and f"wrote {path}" in out
