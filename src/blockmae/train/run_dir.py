"""The run directory: prepare it (lock, resume from the newest intact checkpoint), restore a checkpoint, refuse a
non-finite loss, save checkpoints, and leave nothing behind after a failed start.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch

from ..checkpoint import (WEIGHTS, latest_checkpoint, latest_intact_checkpoint, load_state, load_weights, prune,
                          rng_state, save_checkpoint, set_rng_state)
from ..config import Config, ConfigError, RESUMABLE_KEYS, diff_configs, load_config, save_config
from ..errors import CheckpointWriteError, NonFiniteLoss
from . import lock


def prepare(cfg: Config, out: Path, write: bool = True) -> tuple[Config, Path | None]:
    """Resume if `out` holds a checkpoint (the saved config wins; only harmless keys may change): the config
    to train with and the checkpoint to start from. `write=False` (processes other than the writer, after
    it): only read what the writer prepared."""
    if not write:
        return load_config(out / "config.yaml"), latest_intact_checkpoint(out)[0]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory for the run")
    out.mkdir(parents=True, exist_ok=True)
    lock.acquire(out)  # one writer per run directory; released when pretrain returns or the process ends
    ckpt, damaged = latest_intact_checkpoint(out)
    for path, problem in damaged:  # moved aside (kept for inspection) so a re-saved step cannot replace it
        aside = path.with_name(f"damaged-{path.name}")
        shutil.rmtree(aside, ignore_errors=True)
        path.rename(aside)
        print(f"blockmae: warning: checkpoint {path} is damaged ({problem}); kept as {aside}, "
              f"resuming from {ckpt or 'the start'}")
    saved = out / "config.yaml"
    if ckpt is not None and saved.exists():
        old = load_config(saved)
        changed = [k for k in diff_configs(old, cfg) if k not in RESUMABLE_KEYS]
        if changed:
            raise ConfigError(f"{out} holds a run with a different config ({', '.join(changed)}); "
                              f"resume with the same config or choose another --out")
        for key in RESUMABLE_KEYS:  # dotted paths of any depth (model.decoder.grouped)
            *sections, name = key.split(".")
            into, source = old, cfg
            for section in sections:
                into, source = getattr(into, section), getattr(source, section)
            setattr(into, name, getattr(source, name))
        cfg = old
    save_config(cfg, saved)
    return cfg, ckpt


def restore(ckpt: Path | None, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load a checkpoint's weights, optimiser state and random streams; the step to continue from (0: none)."""
    if ckpt is None:
        return 0
    model.load_state_dict(load_weights(ckpt))
    state = load_state(ckpt)
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    return state["step"]


def initial_weights(model: torch.nn.Module, source: str) -> None:
    """`train.init_from`: load a run's (its newest intact checkpoint) or a checkpoint's weights into a fresh run."""
    path = Path(source)
    ckpt = path if (path / WEIGHTS).is_file() else latest_intact_checkpoint(path)[0] if path.is_dir() else None
    if ckpt is None:
        raise ConfigError(f"train.init_from={source} is neither a run directory with an intact checkpoint nor a "
                          f"checkpoint directory")
    try:
        model.load_state_dict(load_weights(ckpt))
    except RuntimeError as e:
        raise ConfigError(f"train.init_from={source}: its weights do not fit this model (same model.* keys needed): "
                          f"{str(e).splitlines()[0]}") from None


def check_finite(losses: list[float | None], step: int, out: Path) -> None:
    """Stop before anything is saved over the last good checkpoint when a loss is NaN or infinite."""
    for k, value in enumerate(losses):
        if value is not None and not math.isfinite(value):
            raise NonFiniteLoss(
                f"stage {k + 1} loss is {value} at step {step + 1}; nothing was saved over the last "
                f"good checkpoint ({latest_checkpoint(out) or 'none yet'}). Lower train.lr or set train.grad_clip.")


def save(out: Path, step: int, model: torch.nn.Module, optimizer_state: dict, cfg: Config) -> None:
    """An atomic checkpoint at `step`, then the old ones pruned; a failed write names the intact one."""
    state = {"step": step, "optimizer": optimizer_state, "rng": rng_state()}
    try:
        save_checkpoint(out, step, model, state)
    except OSError as e:
        raise CheckpointWriteError(
            f"could not write checkpoint {step} in {out} ({e.strerror or e}); the last complete one "
            f"({latest_checkpoint(out) or 'none'}) is intact: make room and run the same command to resume") from None
    prune(out, cfg.train.keep_last, cfg.train.snapshot_every)


def forget_failed_start(out: Path, fresh: bool) -> None:
    """A run that this call created and that failed before its first checkpoint leaves no directory behind
    (only the lock holder removes it: a second process refused by the lock must not touch the first one's run)."""
    if (fresh and lock.holds(out) and out.is_dir() and latest_checkpoint(out) is None
            and not (out / "checkpoints").is_dir()):
        shutil.rmtree(out, ignore_errors=True)
