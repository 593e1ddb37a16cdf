"""benchmarks/gpu_check.sh must run unchanged the first time a GPU is there: it refuses a machine without one,
handles its arguments, every command it would run parses and names things that exist, and its summary says
what passed."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from blockmae.bench.configurations import configurations
from blockmae.bench.presets import PRESETS
from blockmae.cli import build_parser
from blockmae.config import config_path, load_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def check(*args, cuda_hidden=True):
    env = dict(os.environ, PYTHON=sys.executable) | ({"CUDA_VISIBLE_DEVICES": ""} if cuda_hidden else {})
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.slow  # the script runs python
def test_without_a_gpu_it_refuses_and_writes_nothing(tmp_path):
    done = check("--out", str(tmp_path / "out"))
    assert done.returncode == 3 and "no CUDA GPU" in done.stderr and "refusing" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [(["--bogus"], "unknown argument '--bogus'"),
                                           (["--out"], "--out needs a directory")])
def test_bad_arguments_stop_with_the_usage(args, message):
    done = check(*args)
    assert done.returncode == 2 and message in done.stderr and "usage: benchmarks/gpu_check.sh" in done.stderr


def test_every_command_it_would_run_parses_and_names_what_exists(tmp_path):
    done = check("--dry-run", "--out", str(tmp_path / "o"))
    assert done.returncode == 0 and check("--help").returncode == 0
    tests, bench, run = (shlex.split(line) for line in done.stdout.strip().splitlines())
    assert tests[1:4] == ["-m", "pytest", "-q"] and "cuda" in tests and Path(tests[tests.index("-m", 2) + 2]).is_dir()
    assert bench[1:4] == ["-m", "blockmae", "bench"] and run[1:4] == ["-m", "blockmae", "pretrain"]
    args = build_parser().parse_args(bench[3:])
    assert args.preset == "deit-s" and args.device == "cuda" and args.sets == ["train.amp=bf16"]
    names = {c.name for c in configurations(PRESETS["deit-s"])}
    assert set(args.configs.split(",")) <= names and {"e2e-compile", "sim-K4-lean-compile"} <= set(args.configs.split(","))
    args = build_parser().parse_args(run[3:])
    cfg = load_config(config_path(args.config), args.overrides)  # the paper config with the check's overrides: valid
    assert (cfg.train.max_steps, cfg.train.amp, cfg.train.device, cfg.model.image_size) == (200, "bf16", "cuda", 128)
    assert args.out.startswith(str(tmp_path / "o"))


def test_the_summary_gathers_every_step_and_fails_if_one_did(tmp_path):
    (tmp_path / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in [
        {"step": "tests", "command": "pytest", "rc": 0, "seconds": 20, "log": "tests.log"},
        {"step": "bench", "command": "bench", "rc": 1, "seconds": 200, "log": "bench.log"}]))
    (tmp_path / "tests.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="0">'
        '<testcase name="a"/><testcase name="b"><failure/></testcase><testcase name="c"/></testsuite></testsuites>')
    (tmp_path / "bench-deit-s-cuda-bf16.json").write_text(json.dumps(
        {"machine": {"device": "cuda"}, "targets": [], "rows": [{"name": "e2e", "step_s": 0.1, "mfu": 0.8}]}))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_summary.py"), str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "FAILED" in done.stdout
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["passed"] is False and summary["tests"]["failed"] == ["b"] and summary["tests"]["tests"] == 3
    assert summary["bench"]["rows"][0]["mfu"] == 0.8 and summary["paper_run"] is None
