"""`dist.mode=pipeline`: stage k of a `simultaneous` run on rank k, every stage on a different batch at once.

No gradient crosses a stage boundary, so stage k only needs stage k-1's detached output. Rank k
runs step t's forward, local loss, backward and its own optimiser step, and sends its output on
with a non-blocking `isend`; meanwhile rank k-1 already works on step t+1. Only activations (and
the per-stage losses, K numbers for the log) travel, forward only. The clip batch and masks are
not sent: every rank draws them itself from (seed, step), exactly as one process does (the cost is
that each rank loads the batch; docs/distributed.md). Stage k at step t thus sees what it sees in
one process, with its own optimiser state and the same LR schedule, and the run ends with the
weights of a single-process run (tests/train/test_distributed.py).

The last rank finishes each step last: it writes the log, and at a checkpoint every rank hands it
its stage's weights and optimiser state, so the run directory has the usual layout (one
model.safetensors, one state.pt) and resumes in any mode, with any number of processes.
`summary.json` adds where each rank's time went (`pipeline_time`, `StageClock`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..config import Config, ConfigError
from ..data.transforms import to_model_input
from ..model import BlockMAE
from ..model.masking import gather_tokens, num_hidden, split_indices, subset_indices
from ..model.objective import reconstruction_loss
from .checkpoint import latest_checkpoint, load_state, load_weights, prune, rng_state, save_checkpoint, set_rng_state
from .engine import (NonFiniteLoss, _prepare_run_dir, make_schedule, mask_generator, stage_parameters, step_lr,
                     train_batches, train_dataset, write_summary)
from .logging import RunLog
from .optim import build_optimizer, effective_lr

SEND_WINDOW = 2  # steps a stage may run ahead of the next one (bounds the activations in flight)


def stage_keys(model: BlockMAE, k: int) -> list[str]:
    """The state-dict keys stage k owns: its layers (the embedding for stage 0) and its decoder."""
    start, end = model.stage_bounds(k)
    prefixes = (["embed."] if k == 0 else []) + [f"layers.{i}." for i in range(start, end)] + [f"decoders.{k}."]
    return [key for key in model.state_dict() if key.startswith(tuple(prefixes))]


def _cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


class Inbox:
    """What the previous stage sends, per step: one activation per micro-batch, then the losses so far.

    Receives are posted one step ahead, so the next step's activations arrive while this one computes.
    """

    def __init__(self, src: int, shape: tuple, micro: int, num_stages: int, device: torch.device):
        self.src, self.shape, self.micro, self.k, self.device = src, shape, micro, num_stages, device
        self.posted: dict[int, list] = {}

    def post(self, step: int) -> None:
        if step in self.posted:
            return
        bufs = [torch.empty(self.shape, device=self.device) for _ in range(self.micro)]
        bufs.append(torch.zeros(self.k, dtype=torch.float64, device=self.device))
        self.posted[step] = [(b, dist.irecv(b, self.src, tag=_tag(step, j, self.micro))) for j, b in enumerate(bufs)]

    def take(self, step: int, j: int) -> torch.Tensor:
        buf, work = self.posted[step][j]
        work.wait()
        if j == self.micro:
            del self.posted[step]
        return buf


class StageClock:
    """Where one rank's time goes, in seconds: loading its batch (`data`), waiting for the previous stage's
    output (`wait_input`: the pipeline's bubbles), its forward, loss, backward and step (`compute`; `loss.item()`
    synchronises a GPU), waiting for its sends to drain (`wait_send`: the next stage is slower) and checkpoints.

    The first logged window (fill and warm-up) is left out, as the bench leaves out its log row.
    """

    PARTS = ("data", "wait_input", "compute", "wait_send", "checkpoint")

    def __init__(self, step: int):
        self.reset(step)

    def reset(self, step: int) -> None:
        self.seconds, self.since, self.began = dict.fromkeys(self.PARTS, 0.0), step, time.perf_counter()

    @contextmanager
    def __call__(self, part: str):
        begin = time.perf_counter()
        yield
        self.seconds[part] += time.perf_counter() - begin

    def report(self, step: int) -> dict:
        total = time.perf_counter() - self.began
        return {"from_step": self.since, "steps": step - self.since, "total_s": total,
                **{f"{k}_s": v for k, v in self.seconds.items()}, "other_s": total - sum(self.seconds.values())}


def _tag(step: int, j: int, micro: int) -> int:
    return (step * (micro + 1) + j) % (1 << 30)


def pretrain_pipeline(cfg: Config, out: Path, device: torch.device) -> dict | None:
    """This rank's stage of a pipelined `simultaneous` run; the last rank returns the summary, the others None."""
    rank, world = dist.get_rank(), dist.get_world_size()
    last = world - 1
    writer = rank == last
    if not writer:
        dist.barrier()
    cfg, ckpt = _prepare_run_dir(cfg, out, write=writer)
    if writer:
        dist.barrier()
    control = dist.new_group(backend="gloo")  # checkpoint gathering on CPU, apart from the activations
    t, m = cfg.train, cfg.model
    torch.manual_seed(t.seed)  # every rank builds the same initial model, as one process would

    dataset = train_dataset(cfg)
    model = BlockMAE(m)
    if model.num_stages != world:
        raise ConfigError(f"dist.mode=pipeline runs one stage per process: model.partition has {model.num_stages} "
                          f"stages but {world} processes were launched (torchrun --nproc-per-node {model.num_stages})")
    schedule = make_schedule(cfg, len(dataset), world)
    peak_lr = effective_lr(t.lr, t.batch_size * t.accum_steps)
    if ckpt is not None:
        model.load_state_dict(load_weights(ckpt))
    for module in model.stage_modules(rank) + [model.decoders[rank]]:
        module.to(device)  # the other stages stay on the CPU, untouched
    mine = stage_parameters(model)[rank]
    # One optimiser over the whole model, as in one process, but only this stage's parameters ever get a gradient
    # (AdamW skips the rest and keeps no state for them): its state dict has the single-process layout.
    optimizer = build_optimizer(model, peak_lr, t.weight_decay, t.betas)
    start = 0
    if ckpt is not None:
        state = load_state(ckpt)
        optimizer.load_state_dict(state["optimizer"])
        own = set(map(id, mine))
        for p in [p for p in optimizer.state if id(p) not in own]:
            del optimizer.state[p]
        set_rng_state(state["rng"])
        start = state["step"]
    if t.compile:
        model.compile_layers()
    log = RunLog(out, start, t.tensorboard) if writer else None
    if writer:
        print(f"blockmae: pipeline, stage k on rank k of {world}, {schedule.total} steps, batch "
              f"{t.batch_size * t.accum_steps}, effective lr {peak_lr:.3g}, device {device}"
              + (f", resuming at step {start}" if start else ""))

    loader = train_batches(cfg, dataset, start, device)
    weight, scale = (t.loss_weights or [1.0] * world)[rank], 1.0 / t.accum_steps
    ratio = model.decoder_mask_ratio[rank]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if t.amp == "bf16" else nullcontext()
    n_visible = model.embed.num_tokens - num_hidden(cfg.mask.kind, cfg.mask.ratio, model.grid)
    inbox = Inbox(rank - 1, (t.batch_size, n_visible, m.width), t.accum_steps, world, device) if rank else None
    sends: deque[list] = deque()

    sums, count, clips_in_row, tick, skipped_in_row = [0.0] * world, 0, 0, time.perf_counter(), 0
    model.train()
    clock = StageClock(start)
    bar = tqdm(total=schedule.total, initial=start, desc=f"pipeline, {world} stages", disable=not (t.progress and writer),
               dynamic_ncols=True)
    for step in range(start, schedule.total):
        if step == start + t.log_every:
            clock.reset(step)
        if inbox is not None:
            inbox.post(step)
            if step + 1 < schedule.total:
                inbox.post(step + 1)
        with clock("wait_send"):
            while len(sends) > SEND_WINDOW:  # do not run further ahead of the next stage
                for work, _ in sends.popleft():
                    work.wait()
        outgoing, value_sum = [], 0.0
        for micro in range(t.accum_steps):
            with clock("data"):
                clips, _, skipped = next(loader)
                skipped_in_row += len(skipped)
                clips_in_row += clips.shape[0]
                video = to_model_input(clips.to(device, non_blocking=True), m.pixel_mean, m.pixel_std)
                mask = model.make_mask(video.shape[0], mask_generator(t.seed, step, micro), cfg.mask.kind,
                                       cfg.mask.ratio)
                visible_idx, hidden_idx = split_indices(mask.to(device))
            if inbox is not None:
                with clock("wait_input"):
                    received = inbox.take(step, micro)
            with clock("compute"):
                with autocast:
                    if rank == 0:  # what `BlockMAE.run_plan` does for stage 1
                        x, target = model._visible_and_targets(video, visible_idx, hidden_idx)
                    else:
                        target = model.hidden_targets(video, hidden_idx)
                        x = received
                    x = model.run_stage(rank, x)
                    if ratio > 0:  # decoder masking (from torch's global generator, as in one process)
                        keep = subset_indices(hidden_idx.shape[0], hidden_idx.shape[1], ratio).to(device)
                        hidden_idx, target = hidden_idx.gather(1, keep), gather_tokens(target, keep)
                    loss = reconstruction_loss(model.decoders[rank](x, visible_idx, hidden_idx), target)
                (loss * weight * scale).backward()
            if rank < last:  # sent before `item()` waits for the GPU, so the transfer overlaps
                y = x.detach().float().contiguous()
                outgoing.append((dist.isend(y, rank + 1, tag=_tag(step, micro, t.accum_steps)), y))
            with clock("compute"):
                value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLoss(f"stage {rank + 1} loss is {value} at step {step + 1}; nothing was saved over the "
                                    f"last good checkpoint ({latest_checkpoint(out) or 'none yet'}). Lower train.lr or "
                                    f"set train.grad_clip.")
            value_sum += value / t.accum_steps

        lr = step_lr(cfg, schedule, 0, step, peak_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with clock("compute"):
            if t.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for p in mine if p.grad is not None], t.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        # Every stage's loss at this step, so far: they travel with the activations to the last rank, which logs them.
        if inbox is None:
            losses = torch.zeros(world, dtype=torch.float64, device=device)
        else:
            with clock("wait_input"):
                losses = inbox.take(step, t.accum_steps).clone()
        losses[rank] = value_sum
        if rank < last:
            outgoing.append((dist.isend(losses, rank + 1, tag=_tag(step, t.accum_steps, t.accum_steps)), losses))
            sends.append(outgoing)
        else:
            sums = [s + v for s, v in zip(sums, losses.tolist())]
            count += 1
        done = step + 1
        bar.update(1)
        if writer and (done % t.log_every == 0 or done == schedule.total):
            elapsed = time.perf_counter() - tick
            log.write({"step": done, "epoch": done // schedule.steps_per_epoch, "phase": 1,
                       "losses": [s / count for s in sums], "lr": lr,
                       "clips_per_s": clips_in_row / max(elapsed, 1e-9), "skipped": skipped_in_row})
            sums, count, clips_in_row, tick, skipped_in_row = [0.0] * world, 0, 0, time.perf_counter(), 0
        if done % t.checkpoint_every == 0 or done == schedule.total:
            with clock("checkpoint"):
                _checkpoint(model, optimizer, rank, done, out, cfg, control)
    times = clock.report(schedule.total)
    for outgoing in sends:
        for work, _ in outgoing:
            work.wait()
    bar.close()
    every_rank = [None] * world if writer else None
    dist.gather_object(times, every_rank, dst=last, group=control)
    if not writer:
        return None
    log.close()
    model.to(device)
    return write_summary(out, cfg, model, schedule.total, [], device, dist=f"pipeline x{world}",
                         pipeline_time=every_rank)


def _checkpoint(model: BlockMAE, optimizer, rank: int, step: int, out: Path, cfg: Config, control) -> None:
    """Every stage hands its weights and optimiser state to the last rank, which writes one ordinary checkpoint."""
    weights = model.state_dict()
    piece = {"weights": _cpu({k: weights[k] for k in stage_keys(model, rank)}),
             "optimizer": _cpu(optimizer.state_dict()["state"])}
    last = dist.get_world_size() - 1
    pieces = [None] * dist.get_world_size() if rank == last else None
    dist.gather_object(piece, pieces, dst=last, group=control)
    if rank != last:
        return
    for p in pieces:  # the other stages' tensors are not used here again until the end: keep them current
        model.load_state_dict(p["weights"], strict=False)
    state = optimizer.state_dict()
    state["state"] = {i: s for p in pieces for i, s in p["optimizer"].items()}
    state["param_groups"] = _cpu(state["param_groups"])
    save_checkpoint(out, step, model, {"step": step, "optimizer": state, "rng": rng_state()})
    prune(out, cfg.train.keep_last, cfg.train.snapshot_every)
