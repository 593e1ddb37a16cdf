"""Atomic checkpoints: RUN_DIR/checkpoints/<step>/{model.safetensors, state.pt}.

A checkpoint is written under a temporary name and renamed into place, so a crash never
leaves a half-written one; `state.pt` holds only tensors and plain values, so it loads
with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

WEIGHTS, STATE = "model.safetensors", "state.pt"


def checkpoint_steps(run_dir: Path) -> list[int]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / WEIGHTS).is_file())


def latest_checkpoint(run_dir: Path) -> Path | None:
    steps = checkpoint_steps(run_dir)
    return Path(run_dir) / "checkpoints" / str(steps[-1]) if steps else None


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
            **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {})}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, state: dict) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
    torch.save(state, tmp / STATE)
    for f in (tmp / WEIGHTS, tmp / STATE):
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    final = root / str(step)
    if final.exists():  # re-saving a step (e.g. after a resume with no progress) replaces it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    return final


def load_weights(path: Path) -> dict:
    return load_file(str(Path(path) / WEIGHTS))


def load_state(path: Path) -> dict:
    return torch.load(Path(path) / STATE, weights_only=True)


def prune(run_dir: Path, keep_last: int, snapshot_every: int | None) -> None:
    """Keep the newest `keep_last` checkpoints plus every permanent snapshot; drop stale temporaries."""
    root = Path(run_dir) / "checkpoints"
    for tmp in root.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    steps = checkpoint_steps(run_dir)
    for step in steps[:-keep_last] if keep_last else steps:
        if snapshot_every and step % snapshot_every == 0:
            continue
        shutil.rmtree(root / str(step))
