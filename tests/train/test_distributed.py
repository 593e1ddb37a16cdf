"""Several processes (gloo, localhost): data parallel and the blockwise pipeline learn what one process learns."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

import blockmae
from blockmae.config import ConfigError
from blockmae.checkpoint import checkpoint_steps
from blockmae.train.engine import pretrain
from helpers import free_port, join_as_rank, one_thread, small_config

pytestmark = pytest.mark.slow  # real processes / trained runs: `make test` runs it, `make test-fast` does not

# scenes, not digits: no scikit-learn import (the digits' source images) in every rank's fresh process
FAST = ["data.train=scenes,n=48", "train.batch_size=4", "train.progress=false", "train.log_every=1",
        "model.image_size=16", "model.patch=4", "model.width=32", "model.heads=2", "model.decoder.width=16",
        "model.decoder.heads=1", "model.partition=2", "train.lr=1e-2", "train.max_steps=4",
        "train.checkpoint_every=2", "train.accum_steps=2", "train.device=cpu"]


def _worker(rank: int, world: int, port: int, jobs: list[tuple[list[str], str]]) -> None:
    """Every job's run as rank `rank`, one after another in one process group (as `pretrain` joins one that exists):
    each rank's process starts once for all of this file's distributed runs, not once per run."""
    join_as_rank(rank, world, port)
    dist.init_process_group("gloo")
    try:
        for overrides, out in jobs:
            pretrain(small_config(*FAST, *overrides), out)
            dist.barrier()  # the next run starts when every rank is done with this one
    finally:
        dist.destroy_process_group()


def _cut(run: Path, to: Path) -> Path:
    """A copy of a finished 4-step run as if stopped after step 2's checkpoint."""
    shutil.copytree(run, to)
    shutil.rmtree(to / "checkpoints" / "4")
    (to / "summary.json").unlink()
    return to


# the one-process run each distributed run is compared with, and the distributed run's own overrides
ONE = {"simultaneous": ["train.regime=simultaneous"], "sequential": ["train.regime=sequential"],
       "fit": ["train.regime=e2e", "train.monitor_every=0", "train.monitor_fit_steps=2"],  # steps 5-6 fit monitors
       "e2e": ["train.regime=e2e"]}  # not detached: the top loss's backward crosses both stages, monitors aside
DISTRIBUTED = {"ddp-simultaneous": ("simultaneous", ["dist.mode=ddp"]),
               "ddp-sequential": ("sequential", ["dist.mode=ddp"]),  # frozen stages get no gradient
               "ddp-fit": ("fit", ["dist.mode=ddp"]),
               "ddp-resumed": ("e2e", ["dist.mode=ddp"]),  # from the one-process run's step-2 checkpoint
               "pipeline": ("simultaneous", ["dist.mode=pipeline"]),
               "pipeline-resumed": ("simultaneous", ["dist.mode=pipeline"])}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Every run of this file's comparisons: the one-process references (one thread, as each rank has), then all
    the 2-rank runs in one launch (what `torchrun --nproc-per-node 2 -m blockmae pretrain ...` does, per run)."""
    root = tmp_path_factory.mktemp("distributed")
    paths = {name: root / name for name in [*ONE, *DISTRIBUTED]}
    with one_thread():
        for name, overrides in ONE.items():
            pretrain(small_config(*FAST, *overrides), paths[name])
    for name in ("ddp-resumed", "pipeline-resumed"):
        _cut(paths[DISTRIBUTED[name][0]], paths[name])
    jobs = [(ONE[reference] + overrides, str(paths[name])) for name, (reference, overrides) in DISTRIBUTED.items()]
    mp.spawn(_worker, args=(2, free_port(), jobs), nprocs=2, join=True)
    return paths


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


@pytest.mark.parametrize("regime", ["simultaneous", "sequential"])
def test_ddp_two_ranks_equal_one_process_with_the_same_global_batch(runs, regime):
    one, ddp = runs[regime], runs[f"ddp-{regime}"]
    _assert_same_weights(_weights(one, 4), _weights(ddp, 4))
    for a, b in zip(_losses(one), _losses(ddp)):  # the log holds the global batch's losses
        assert [None if v is None else pytest.approx(v, rel=1e-4) for v in a] == b
    assert checkpoint_steps(ddp) == [2, 4]
    summary = json.loads((ddp / "summary.json").read_text())
    assert len(summary["held_out"]["losses"]) == 2


def test_ddp_fits_the_monitors_as_one_process_does(runs):
    _assert_same_weights(_weights(runs["fit"], 6), _weights(runs["ddp-fit"], 6))
    assert [row[0] is not None for row in _losses(runs["ddp-fit"])] == [False] * 4 + [True] * 2


def test_ddp_resumes_a_single_process_run_with_another_world_size(runs):
    cut = runs["ddp-resumed"]
    _assert_same_weights(_weights(runs["e2e"], 4), _weights(cut, 4))
    assert [json.loads(line)["step"] for line in (cut / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_pipeline_two_stages_equal_single_process_simultaneous(runs):
    one, pipe = runs["simultaneous"], runs["pipeline"]
    for step in (2, 4):  # checkpoints gather both stages into the usual layout
        _assert_same_weights(_weights(one, step), _weights(pipe, step))
    a, b = _optimizer_state(one, 4), _optimizer_state(pipe, 4)
    assert a["state"].keys() == b["state"].keys() and a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.allclose(a["state"][i][key], b["state"][i][key], atol=1e-6, rtol=1e-4)
    for x, y in zip(_losses(one), _losses(pipe)):  # both stages' losses, every step
        assert x == pytest.approx(y, rel=1e-4)
    times = json.loads((pipe / "summary.json").read_text())["pipeline_time"]
    assert [t["from_step"] for t in times] == [1, 1] and [t["steps"] for t in times] == [3, 3]  # log_every=1
    for t in times:  # every second of each rank is accounted for
        parts = [t[f"{part}_s"] for part in ("data", "wait_input", "compute", "wait_send", "checkpoint", "other")]
        assert min(parts[:5]) >= 0 and sum(parts) == pytest.approx(t["total_s"])
    assert times[0]["wait_input_s"] == 0 and times[0]["compute_s"] > 0 and times[1]["compute_s"] > 0
    model = blockmae.load(pipe)  # `load` (and so `analyze`) does not care how the run was trained
    assert model.num_stages == 2


def test_pipeline_resumes_from_a_checkpoint(runs):
    cut = runs["pipeline-resumed"]  # optimiser state and step come from the checkpoint, per stage
    _assert_same_weights(_weights(runs["simultaneous"], 4), _weights(cut, 4))
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
