"""Several processes (gloo, localhost): data parallel and the blockwise pipeline learn what one process learns."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

import blockmae
from blockmae.config import ConfigError
from blockmae.checkpoint import checkpoint_steps
from blockmae.train.engine import pretrain
from helpers import free_port, join_as_rank, small_config

pytestmark = [pytest.mark.slow,  # real processes / trained runs: `make test` runs it, `make test-fast` does not
              pytest.mark.usefixtures("single_thread")]  # the one-process runs, on one thread as each rank is

# scenes, not digits: no scikit-learn import (the digits' source images) in every rank's fresh process
FAST = ["data.train=scenes,n=48", "train.batch_size=4", "train.progress=false", "train.log_every=1",
        "model.image_size=16", "model.patch=4", "model.width=32", "model.heads=2", "model.decoder.width=16",
        "model.decoder.heads=1", "model.partition=2", "train.lr=1e-2", "train.max_steps=4",
        "train.checkpoint_every=2", "train.accum_steps=2", "train.device=cpu"]


def _worker(rank: int, world: int, port: int, overrides: list[str], out: str) -> None:
    join_as_rank(rank, world, port)
    pretrain(small_config(*FAST, *overrides), out)


def _spawn(world: int, overrides: list[str], out: Path) -> None:
    """What `torchrun --nproc-per-node world -m blockmae pretrain ...` does, in-process."""
    mp.spawn(_worker, args=(world, free_port(), list(overrides), str(out)), nprocs=world, join=True)


def _weights(run, step):
    return load_file(str(Path(run) / "checkpoints" / str(step) / "model.safetensors"))


def _assert_same_weights(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    bad = [k for k in a if not torch.allclose(a[k], b[k], atol=atol, rtol=1e-4)]
    assert not bad, f"{len(bad)} tensors differ, e.g. {bad[0]}: max |diff| {(a[bad[0]] - b[bad[0]]).abs().max():.3g}"


def _losses(run):
    return [json.loads(line)["losses"] for line in (Path(run) / "log.jsonl").read_text().splitlines()]


def _optimizer_state(run, step):
    state = torch.load(Path(run) / "checkpoints" / str(step) / "state.pt", weights_only=True)
    return state["optimizer"]


@pytest.mark.parametrize("regime", ["simultaneous", "sequential"])  # sequential: frozen stages get no gradient
def test_ddp_two_ranks_equal_one_process_with_the_same_global_batch(tmp_path, regime):
    pretrain(small_config(*FAST, f"train.regime={regime}"), tmp_path / "one")
    _spawn(2, [f"train.regime={regime}", "dist.mode=ddp"], tmp_path / "ddp")
    _assert_same_weights(_weights(tmp_path / "one", 4), _weights(tmp_path / "ddp", 4))
    for a, b in zip(_losses(tmp_path / "one"), _losses(tmp_path / "ddp")):  # the log holds the global batch's losses
        assert [None if v is None else pytest.approx(v, rel=1e-4) for v in a] == b
    assert checkpoint_steps(tmp_path / "ddp") == [2, 4]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert len(summary["held_out"]["losses"]) == 2


def test_ddp_fits_the_monitors_as_one_process_does(tmp_path):
    fit = ["train.regime=e2e", "train.monitor_every=0", "train.monitor_fit_steps=2"]  # steps 5-6 fit the monitors
    pretrain(small_config(*FAST, *fit), tmp_path / "one")
    _spawn(2, [*fit, "dist.mode=ddp"], tmp_path / "ddp")
    _assert_same_weights(_weights(tmp_path / "one", 6), _weights(tmp_path / "ddp", 6))
    assert [row[0] is not None for row in _losses(tmp_path / "ddp")] == [False] * 4 + [True] * 2


def test_ddp_resumes_a_single_process_run_with_another_world_size(tmp_path):
    e2e = ["train.regime=e2e"]  # not detached: the top loss's backward crosses both stages, monitors on the side
    pretrain(small_config(*FAST, *e2e), tmp_path / "one")
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "one", cut)
    shutil.rmtree(cut / "checkpoints" / "4")
    _spawn(2, [*e2e, "dist.mode=ddp"], cut)
    _assert_same_weights(_weights(tmp_path / "one", 4), _weights(cut, 4))
    assert [json.loads(line)["step"] for line in (cut / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_pipeline_two_stages_equal_single_process_simultaneous(tmp_path):
    pretrain(small_config(*FAST), tmp_path / "one")
    _spawn(2, ["dist.mode=pipeline"], tmp_path / "pipe")
    for step in (2, 4):  # checkpoints gather both stages into the usual layout
        _assert_same_weights(_weights(tmp_path / "one", step), _weights(tmp_path / "pipe", step))
    a, b = _optimizer_state(tmp_path / "one", 4), _optimizer_state(tmp_path / "pipe", 4)
    assert a["state"].keys() == b["state"].keys() and a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.allclose(a["state"][i][key], b["state"][i][key], atol=1e-6, rtol=1e-4)
    for x, y in zip(_losses(tmp_path / "one"), _losses(tmp_path / "pipe")):  # both stages' losses, every step
        assert x == pytest.approx(y, rel=1e-4)
    times = json.loads((tmp_path / "pipe" / "summary.json").read_text())["pipeline_time"]
    assert [t["from_step"] for t in times] == [1, 1] and [t["steps"] for t in times] == [3, 3]  # log_every=1
    for t in times:  # every second of each rank is accounted for
        parts = [t[f"{part}_s"] for part in ("data", "wait_input", "compute", "wait_send", "checkpoint", "other")]
        assert min(parts[:5]) >= 0 and sum(parts) == pytest.approx(t["total_s"])
    assert times[0]["wait_input_s"] == 0 and times[0]["compute_s"] > 0 and times[1]["compute_s"] > 0
    model = blockmae.load(tmp_path / "pipe")  # `load` (and so `analyze`) does not care how the run was trained
    assert model.num_stages == 2


def test_pipeline_resumes_from_a_checkpoint(tmp_path):
    pretrain(small_config(*FAST), tmp_path / "one")
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "one", cut)
    shutil.rmtree(cut / "checkpoints" / "4")
    (cut / "summary.json").unlink()
    _spawn(2, ["dist.mode=pipeline"], cut)  # optimiser state and step come from the checkpoint, per stage
    _assert_same_weights(_weights(tmp_path / "one", 4), _weights(cut, 4))
    assert [json.loads(line)["step"] for line in (cut / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert (cut / "summary.json").exists()


def test_torchrun_runs_the_cli_in_pipeline_mode(tmp_path):
    src = str(Path(blockmae.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "blockmae",
           "pretrain", "tiny", "model.depth=4", "model.frames=4", *FAST, "train.max_steps=2", "dist.mode=pipeline",
           "--out", str(tmp_path / "run")]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert checkpoint_steps(tmp_path / "run") == [2]
    assert result.stdout.count("run directory:") == 1  # one rank prints the summary
    assert "dist:\n  mode: pipeline" in (tmp_path / "run" / "config.yaml").read_text()


def test_modes_that_cannot_work_are_refused_with_a_hint(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="needs train.regime=simultaneous"):
        small_config(*FAST, "dist.mode=pipeline", "train.regime=e2e")
    with pytest.raises(ConfigError, match="torchrun --nproc-per-node K"):
        pretrain(small_config(*FAST, "dist.mode=pipeline"), tmp_path / "a")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="add dist.mode=ddp"):
        pretrain(small_config(*FAST), tmp_path / "b")
