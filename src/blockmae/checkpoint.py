"""Atomic checkpoints: RUN_DIR/checkpoints/<step>/{model.safetensors, state.pt, manifest.json}.

A checkpoint is written under a temporary name and renamed into place, so a crash never
leaves a half-written one; `state.pt` holds only tensors and plain values, so it loads
with `torch.load(weights_only=True)`. `manifest.json` records each file's size and SHA-256,
so damage done later (a truncated copy, a lost file) is detected and named, and a resume
falls back to the newest intact checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .errors import CodeInCheckpoint

WEIGHTS, STATE, MANIFEST = "model.safetensors", "state.pt", "manifest.json"


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def damage(ckpt: Path) -> str | None:
    """What is wrong with a checkpoint directory (a missing, truncated or altered file), or None if intact.

    Checkpoints from before manifests existed are checked for their files and a readable weights header.
    """
    ckpt = Path(ckpt)
    manifest = ckpt / MANIFEST
    if not manifest.is_file():
        for name in (WEIGHTS, STATE):
            if not (ckpt / name).is_file():
                return f"{name} is missing"
        try:
            from safetensors import safe_open

            with safe_open(str(ckpt / WEIGHTS), "pt"):
                pass
        except Exception as e:  # noqa: BLE001 - any failure to parse the header is damage
            return f"{WEIGHTS} is unreadable ({type(e).__name__})"
        return None
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError):
        return f"{MANIFEST} is unreadable"
    for name, expected in files.items():
        path = ckpt / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected["bytes"]:
            return f"{name} is {'truncated' if size < expected['bytes'] else 'longer than written'} " \
                   f"({size} of {expected['bytes']} bytes)"
        if _sha256(path) != expected["sha256"]:
            return f"{name} does not match its SHA-256 (altered after it was written)"
    return None


def latest_intact_checkpoint(run_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint without damage, and every newer one that is damaged, with what is wrong."""
    damaged = []
    root = Path(run_dir) / "checkpoints"
    steps = sorted((int(p.name) for p in root.iterdir() if p.name.isdigit()), reverse=True) if root.is_dir() else []
    for step in steps:
        problem = damage(root / str(step))
        if problem is None:
            return root / str(step), damaged
        damaged.append((root / str(step), problem))
    return None, damaged


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, state: dict) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write(tmp, step, model, state)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a partial checkpoint (a full disk, Ctrl-C)
        raise
    final = root / str(step)
    if final.exists():  # re-saving a step (e.g. after a resume with no progress) replaces it
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    return final


def _write(tmp: Path, step: int, model: torch.nn.Module, state: dict) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
    torch.save(state, tmp / STATE)
    umask = os.umask(0)
    os.umask(umask)
    files = {}
    for name in (WEIGHTS, STATE):
        f = tmp / name
        os.chmod(f, 0o666 & ~umask)  # like any file the user writes (safetensors creates 0600)
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
        files[name] = {"bytes": f.stat().st_size, "sha256": _sha256(f)}
    with open(tmp / MANIFEST, "w") as fh:
        json.dump({"step": step, "files": files}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


def load_weights(path: Path) -> dict:
    return load_file(str(Path(path) / WEIGHTS))


def load_state(path: Path) -> dict:
    return load_plain(Path(path) / STATE, "blockmae writes only tensors and plain values there, so this file is not "
                                          "one it wrote: resume from a checkpoint you trust, or start a new run")


def load_plain(path: str | Path, fix: str, **kwargs):
    """`torch.load(weights_only=True)` of a file the user gave us, never retried with weights_only=False. A pickle
    that holds code is refused in one line naming the file and `fix` (PyTorch's own error is a page that suggests
    weights_only=False, i.e. running the code)."""
    try:
        return torch.load(path, weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        code = _pickled_code(path, str(e))
        if code:
            raise CodeInCheckpoint(f"{path} holds code, not plain weights (its pickle refers to "
                                   f"{', '.join(code[:3])}{', ...' if len(code) > 3 else ''}), so blockmae does not "
                                   f"load it: {fix}") from None
        raise ValueError(f"{path} is not a PyTorch checkpoint blockmae can read (damaged, or not written by "
                         "torch.save)") from None


def _pickled_code(path: str | Path, message: str) -> list[str]:
    """The classes or functions a checkpoint's pickle refers to beyond tensors and plain values; [] when
    weights_only failed for another reason (a damaged file)."""
    try:  # torch >= 2.5, zip checkpoints: every such name, not only the first
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        found = []
    # legacy (non-zip) files and older torch: the first name, from the unpickler's message
    named = re.findall(r"GLOBAL (\S+) was not an allowed global|Unsupported class (\S+)", message)
    return found or [a or b for a, b in named]


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
