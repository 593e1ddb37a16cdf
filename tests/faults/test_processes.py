"""Real processes against one run directory: a lock that names its holder, kill -9 and Ctrl-C at any step
lose nothing (the resumed run ends with the same weights as an uninterrupted one)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow  # real processes / trained runs: `make test` runs it, `make test-fast` does not

STEPS = 12
# scenes, not digits: no scikit-learn import (the digits' source images) in each of the processes; batch 8 of 32
# clips still crosses epoch boundaries (4 steps an epoch) and leaves a stopped run a few tenths of a second per step
ARGS = ["tiny", "data.train=scenes,n=32", "data.test=scenes,n=16", "train.batch_size=8", f"train.max_steps={STEPS}",
        "train.checkpoint_every=2", "train.log_every=1", "train.progress=false", "train.regime=simultaneous",
        "model.decoder.mask_ratio=0.0", "model.depth=4", "model.partition=4"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start(out: Path, *extra: str) -> subprocess.Popen:
    args = ARGS + list(extra)
    # Ctrl-C as from a terminal: a test suite started in the background (`make test &`) ignores SIGINT, and a child
    # inherits that, so Python would never raise KeyboardInterrupt in it.
    return subprocess.Popen([sys.executable, "-m", "blockmae", "pretrain", *args, "--out", str(out)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


def steps_logged(out: Path) -> int:
    try:
        lines = (out / "log.jsonl").read_text().splitlines()
        return json.loads(lines[-1])["step"] if lines else 0
    except (OSError, ValueError, IndexError):
        return 0


def lock_holder(out: Path) -> int | None:
    try:
        return json.loads((out / ".lock").read_text()).get("pid")
    except (OSError, ValueError):  # not there yet, or being written
        return None


def final_weights(out: Path) -> dict:
    return load_file(str(out / "checkpoints" / str(STEPS) / "model.safetensors"))


def test_two_processes_one_directory_and_a_stale_lock(tmp_path):
    out = tmp_path / "run"
    first = start(out, "train.max_steps=4000")  # long enough to be running throughout
    wait_for(lambda: steps_logged(out) >= 2)
    second = start(out, "train.max_steps=4000")
    _, err = second.communicate(timeout=120)
    assert second.returncode != 0
    assert f"is in use by process {first.pid}" in err and "Traceback" not in err
    first.kill()  # kill -9: the lock file stays behind
    first.communicate()
    assert (out / ".lock").exists()
    third = start(out, "train.max_steps=4000")  # resumes: same config, the stale lock does not block it
    wait_for(lambda: lock_holder(out) == third.pid)
    resumed_at = steps_logged(out)
    wait_for(lambda: steps_logged(out) >= resumed_at + 4)
    third.kill()
    _, err = third.communicate()
    assert "which is gone; taking it over" in err
    rows = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert rows == sorted(set(rows))  # no step logged twice


def test_kill_and_ctrl_c_at_any_step_lose_nothing(tmp_path):
    reference = tmp_path / "reference"
    with open(tmp_path / "reference.log", "w") as log:  # the uninterrupted run trains beside the stopped ones
        uninterrupted = subprocess.Popen([sys.executable, "-m", "blockmae", "pretrain", *ARGS, "--out", str(reference)],
                                         env=ENV, stdout=log, stderr=subprocess.STDOUT)
    resumed = {}
    for how in ("kill", "interrupt"):
        at = random.randrange(2, STEPS - 2)  # any step: resuming must be exact wherever the run was stopped
        out = tmp_path / how
        proc = start(out)
        wait_for(lambda: steps_logged(out) >= at)
        proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if how == "interrupt":
            assert proc.returncode == 130 and "Traceback" not in err, err
            assert "interrupted; the last checkpoint is" in err and "run the same command again" in err
        done = subprocess.run([sys.executable, "-m", "blockmae", "pretrain", *ARGS, "--out", str(out)],
                              env=ENV, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        resumed[(how, at)] = final_weights(out)
    assert uninterrupted.wait() == 0, (tmp_path / "reference.log").read_text()
    expected = final_weights(reference)
    for (how, at), got in resumed.items():
        assert all(torch.equal(got[k], expected[k]) for k in expected), (how, at)
