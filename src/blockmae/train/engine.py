"""Pretraining: one loop for every regime. A regime only changes the model's `Plan`.

Every random stream is a function of (seed, step): the batch order comes from a seeded
permutation per epoch and the masks from a generator seeded per step, so a resumed run
sees exactly the batches and masks the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from ..config import Config, ConfigError, RESUMABLE_KEYS, diff_configs, load_config, save_config
from ..data import SkipCorrupt, build_dataset, collate
from ..data.transforms import to_model_input
from ..model import BlockMAE, regime_plan
from ..errors import CheckpointWriteError, Interrupted, NonFiniteLoss
from ..eval.reconstruction import held_out_losses as score_held_out
from . import distributed, lock
from .checkpoint import (latest_checkpoint, latest_intact_checkpoint, load_state, load_weights, prune, rng_state,
                         save_checkpoint, set_rng_state)
from .logging import RunLog, read_log
from .optim import build_optimizer, cosine_lr, effective_lr, phase_bounds


class EpochBatches(Sampler):
    """Infinite batches of indices: epoch e is a permutation seeded by (seed, e), cut into full batches.

    Starting at batch `start` replays the exact same sequence an uninterrupted run would see.
    With `with_epoch`, indices are (index, epoch) pairs, so video datasets draw new clips and
    crops every epoch even inside persistent DataLoader workers.
    """

    def __init__(self, size: int, batch: int, seed: int, start: int = 0, with_epoch: bool = False):
        if size < batch:
            raise ConfigError(f"the training set has {size} clips, fewer than train.batch_size={batch}")
        self.size, self.batch, self.seed, self.start, self.with_epoch = size, batch, seed, start, with_epoch
        self.per_epoch = size // batch

    def __iter__(self):
        b = self.start
        while True:
            epoch, pos = divmod(b, self.per_epoch)
            perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
            indices = perm[pos * self.batch:(pos + 1) * self.batch].tolist()
            yield [(i, epoch) for i in indices] if self.with_epoch else indices
            b += 1


def mask_generator(seed: int, step: int, micro: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + micro)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device='{name}' but no CUDA device is available; use train.device=cpu")
    return torch.device(name)


@dataclass
class Schedule:
    """How many steps, and for `sequential`, where each stage's phase ends."""
    total: int
    phase_ends: list[int]
    steps_per_epoch: int

    def phase(self, step: int) -> int:
        return next(k for k, end in enumerate(self.phase_ends) if step < end)

    def phase_start(self, k: int) -> int:
        return self.phase_ends[k - 1] if k else 0


def make_schedule(cfg: Config, dataset_size: int, num_stages: int) -> Schedule:
    t = cfg.train
    per_epoch = max(1, dataset_size // (t.batch_size * t.accum_steps))
    if t.max_steps is None and t.epochs is None:
        raise ConfigError("set train.max_steps or train.epochs (how long to train)")
    total = t.max_steps if t.max_steps is not None else t.epochs * per_epoch
    if t.regime == "sequential":
        shares = t.phase_split or [1.0] * num_stages
        ends = phase_bounds(total, shares)
        if any(b <= a for a, b in zip([0] + ends[:-1], ends)):
            raise ConfigError(f"train.max_steps={total} is too short to give each of {num_stages} sequential phases a step")
    else:
        ends = [total]
    return Schedule(total, ends, per_epoch)


def step_lr(cfg: Config, schedule: Schedule, phase: int, step: int, peak_lr: float) -> float:
    """Warm-up + cosine over the run (`sequential`: over each phase), a function of the step alone."""
    t = cfg.train
    lr_start = schedule.phase_start(phase)
    phase_len = schedule.phase_ends[phase] - lr_start
    warmup = t.warmup_steps if t.warmup_steps is not None else max(1, round(0.05 * phase_len))
    return cosine_lr(step - lr_start, phase_len, peak_lr, t.min_lr, warmup)


def train_dataset(cfg: Config):
    m, t = cfg.model, cfg.train
    return SkipCorrupt(build_dataset(cfg.data.train, "train", frames=m.frames, image_size=m.image_size,
                                     channels=m.channels, seed=t.seed), strict=cfg.data.strict, seed=t.seed)


def train_batches(cfg: Config, dataset, start: int, device: torch.device, shard=lambda batches: batches):
    """The (clips, labels, skipped) batches from step `start` on; `shard` picks a rank's rows of each batch."""
    t = cfg.train
    sampler = shard(EpochBatches(len(dataset), t.batch_size, t.seed, start=start * t.accum_steps,
                                 with_epoch=getattr(dataset, "accepts_epoch_index", False)))
    return iter(DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers, collate_fn=collate,
                           pin_memory=device.type == "cuda", persistent_workers=cfg.data.num_workers > 0))


def stage_parameters(model: BlockMAE) -> list[list[torch.nn.Parameter]]:
    """Each stage's encoder parameters plus its decoder's: the unit a blockwise stage optimises."""
    return [[p for m in model.stage_modules(k) + [model.decoders[k]] for p in m.parameters()]
            for k in range(model.num_stages)]


def _prepare_run_dir(cfg: Config, out: Path, write: bool = True) -> tuple[Config, Path | None]:
    """Resume if `out` holds a checkpoint (the saved config wins; only harmless keys may change).

    `write=False` (ranks other than the writer, after it): only read what the writer prepared."""
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
        for key in RESUMABLE_KEYS:
            section, name = key.split(".")
            setattr(getattr(old, section), name, getattr(getattr(cfg, section), name))
        cfg = old
    save_config(cfg, saved)
    return cfg, ckpt


def pretrain(cfg: Config, out: str | Path) -> dict | None:
    """Train (or resume) a run in `out`; returns the summary also written to out/summary.json.

    Under torchrun (`dist.mode=ddp|pipeline`, docs/distributed.md) every rank calls this; the
    rank that wrote the run directory returns the summary, the others None.
    """
    out = Path(out)
    fresh = not out.exists()
    device, created = distributed.start(cfg, pick_device(cfg.train.device))
    try:
        if cfg.dist.mode == "pipeline":
            from .pipeline import pretrain_pipeline
            return pretrain_pipeline(cfg, out, device)
        return _pretrain(cfg, out, device)
    except KeyboardInterrupt:
        last = latest_checkpoint(out) if out.is_dir() else None
        _forget_failed_start(out, fresh)
        raise Interrupted(f"interrupted; the last checkpoint is {last or 'none (nothing trained is kept)'}; run the "
                          "same command again to resume from it") from None
    except BaseException:
        _forget_failed_start(out, fresh)
        raise
    finally:
        lock.release(out)
        distributed.stop(created)


def _forget_failed_start(out: Path, fresh: bool) -> None:
    """A run that this call created and that failed before its first checkpoint leaves no directory behind
    (only the lock holder removes it: a second process refused by the lock must not touch the first one's run)."""
    if (fresh and lock.holds(out) and out.is_dir() and latest_checkpoint(out) is None
            and not (out / "checkpoints").is_dir()):
        shutil.rmtree(out, ignore_errors=True)


def _pretrain(cfg: Config, out: Path, device: torch.device) -> dict | None:
    replicas = distributed.Replicas.join(cfg)  # one process: rank 0 of 1, every call below a no-op
    if not replicas.main:
        replicas.barrier()
    cfg, ckpt = _prepare_run_dir(cfg, out, write=replicas.main)
    if replicas.main:
        replicas.barrier()
    t, m = cfg.train, cfg.model
    torch.manual_seed(t.seed)

    dataset = train_dataset(cfg)
    model = BlockMAE(m).to(device)
    schedule = make_schedule(cfg, len(dataset), model.num_stages)
    global_batch = t.batch_size * t.accum_steps
    peak_lr = effective_lr(t.lr, global_batch)
    optimizer = build_optimizer(model, peak_lr, t.weight_decay, t.betas)
    stage_params = stage_parameters(model)

    start = 0
    if ckpt is not None:
        model.load_state_dict(load_weights(ckpt))
        state = load_state(ckpt)
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        start = state["step"]
    replicas.broadcast_(model)
    if t.compile:  # per layer and decoder, so the memory-lean per-stage backward still works
        model.compile_layers()
    log = RunLog(out, start, t.tensorboard) if replicas.main else None
    if replicas.main:
        print(f"blockmae: {t.regime}, K={model.num_stages} stages {model.partition}, {schedule.total} steps, "
              f"batch {global_batch}, effective lr {peak_lr:.3g} (base {t.lr:g} x {global_batch}/256), device {device}"
              + (f", {replicas.world} data-parallel ranks" if replicas.world > 1 else "")
              + (f", resuming at step {start}" if start else ""))

    loader = train_batches(cfg, dataset, start, device, replicas.shard)
    weights = t.loss_weights or [1.0] * model.num_stages
    scale = 1.0 / t.accum_steps
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if t.amp == "bf16" else nullcontext())

    def backward_now(k: int, loss: torch.Tensor) -> None:
        (loss * weights[k] * scale).backward()
        if plan.detach and micro == t.accum_steps - 1:  # data parallel: stage k's gradient is final, average it
            replicas.start_averaging(k, stage_params[k])  # while the next stages compute (one process: no-op)

    sums, count, clips_in_row, tick = [0.0] * model.num_stages, [0] * model.num_stages, 0, time.perf_counter()
    skipped_in_row, skipped_files, reported = 0, [], set()
    model.train()
    bar = tqdm(total=schedule.total, initial=start, desc=f"pretrain {t.regime}",
               disable=not (t.progress and replicas.main), dynamic_ncols=True)
    for step in range(start, schedule.total):
        phase = schedule.phase(step) if t.regime == "sequential" else 0
        plan = regime_plan(t.regime, model.num_stages, phase)
        step_losses = [0.0] * model.num_stages
        for micro in range(t.accum_steps):
            clips, _, skipped = next(loader)
            for item in skipped:  # a corrupt sample was replaced: named once, counted every time (log.jsonl)
                if item not in reported:
                    reported.add(item)
                    tqdm.write(f"skipped {item} (named once; later skips are only counted)")
                if len(skipped_files) < 20 and item not in skipped_files:
                    skipped_files.append(item)
            skipped_in_row += len(skipped)
            clips_in_row += clips.shape[0] * replicas.world
            video = to_model_input(clips.to(device, non_blocking=True), m.pixel_mean, m.pixel_std)
            rows = video.shape[0] * replicas.world  # the global batch, repeated clips (data spec clips=N) included
            mask = model.make_mask(rows, mask_generator(t.seed, step, micro), cfg.mask.kind,
                                   cfg.mask.ratio)[replicas.rows(rows)]  # this rank's rows of the global masks
            with autocast:
                losses = model.run_plan(video, mask, plan, backward=backward_now if t.memory_lean else None)
            pending = [loss * weights[k] for k, loss in enumerate(losses) if loss is not None and loss.requires_grad]
            if pending:
                (sum(pending) * scale).backward()
            for k, loss in enumerate(losses):
                if loss is None:
                    continue
                value = loss.item()
                if not math.isfinite(value):
                    raise NonFiniteLoss(
                        f"stage {k + 1} loss is {value} at step {step + 1}; nothing was saved over the last good "
                        f"checkpoint ({latest_checkpoint(out) or 'none yet'}). Lower train.lr or set train.grad_clip.")
                step_losses[k] += value / t.accum_steps

        lr = step_lr(cfg, schedule, phase, step, peak_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        replicas.average_gradients(stage_params)
        if t.grad_clip:
            # Blockwise stages are separate learners: each clips its own gradient.
            groups = [sum(stage_params, [])] if not plan.detach else stage_params
            for params in groups:
                torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], t.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        step_losses = replicas.mean(step_losses, device)
        for k, loss in enumerate(losses):
            if loss is not None:
                sums[k] += step_losses[k]
                count[k] += 1
        done = step + 1
        bar.update(1)
        if replicas.main and (done % t.log_every == 0 or done == schedule.total):
            elapsed = time.perf_counter() - tick
            row = {"step": done, "epoch": done // schedule.steps_per_epoch, "phase": phase + 1,
                   "losses": [s / c if c else None for s, c in zip(sums, count)], "lr": lr,
                   "clips_per_s": clips_in_row / max(elapsed, 1e-9), "skipped": skipped_in_row}
            log.write(row)
            bar.set_postfix_str(" ".join(f"{v:.3f}" for v in row["losses"] if v is not None))
            sums, count, clips_in_row, tick = [0.0] * model.num_stages, [0] * model.num_stages, 0, time.perf_counter()
            skipped_in_row = 0
        if replicas.main and (done % t.checkpoint_every == 0 or done == schedule.total):
            state = {"step": done, "optimizer": optimizer.state_dict(), "rng": rng_state()}
            try:
                save_checkpoint(out, done, model, state)
            except OSError as e:
                raise CheckpointWriteError(
                    f"could not write checkpoint {done} in {out} ({e.strerror or e}); the last complete one "
                    f"({latest_checkpoint(out) or 'none'}) is intact: make room and run the same command to resume"
                ) from None
            prune(out, t.keep_last, t.snapshot_every)
    bar.close()
    if not replicas.main:
        return None
    log.close()

    return write_summary(out, cfg, model, schedule.total, skipped_files, device)


def write_summary(out: Path, cfg: Config, model: BlockMAE, steps: int, skipped_files: list, device: torch.device,
                  **extra) -> dict:
    """summary.json of a finished run: losses from its log, skipped samples, held-out loss per stage (+ `extra`)."""
    rows = read_log(out)
    summary = {"regime": cfg.train.regime, "partition": model.partition, "seed": cfg.train.seed, "steps": steps,
               **first_and_last_losses(rows, model.num_stages),
               "skipped": sum(row.get("skipped", 0) for row in rows), "skipped_files": skipped_files,
               "held_out": held_out_losses(model, cfg, device), **extra}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def first_and_last_losses(rows: list[dict], num_stages: int) -> dict:
    """Each stage's first and last logged training loss (a stage may only log during its phase)."""
    first, last = [None] * num_stages, [None] * num_stages
    for row in rows:
        for k, v in enumerate(row["losses"]):
            if v is not None:
                first[k] = v if first[k] is None else first[k]
                last[k] = v
    return {"first_losses": first, "last_losses": last}


def held_out_losses(model: BlockMAE, cfg: Config, device: torch.device, max_clips: int = 256) -> dict:
    """Every stage's loss on held-out clips under fixed masks (E2E: its monitor decoders), beside the
    trivial predictors' losses (`baselines`) on the same clips and masks."""
    m = cfg.model
    spec = cfg.data.test or cfg.data.train
    dataset = SkipCorrupt(build_dataset(spec, "test", frames=m.frames, image_size=m.image_size, channels=m.channels,
                                        seed=cfg.train.seed + 1), strict=cfg.data.strict, replace=False)
    n = min(len(dataset), max_clips)
    batch = min(cfg.train.batch_size, n)

    def videos():  # an unreadable clip is left out, never replaced: evaluation scores each readable clip once
        for start in range(0, n - batch + 1, batch):
            clips, _, _ = collate([dataset[j] for j in range(start, start + batch)])
            if clips is not None:
                yield to_model_input(clips.to(device), m.pixel_mean, m.pixel_std)

    return {"data": spec, "split": "test", **score_held_out(model, videos, cfg.mask.kind, cfg.mask.ratio)}
