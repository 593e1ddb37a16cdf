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

import dataclasses
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..config import Config, ConfigError
from ..data.transforms import to_model_input
from ..model import BlockMAE
from ..model.masking import num_hidden
from ..regimes import get_regime
from . import run_dir
from .batches import decoder_draws, mask_generator, train_batches, train_dataset
from .logging import RunLog
from .optim import build_optimizer, effective_lr
from .schedule import make_schedule, step_lr
from .step import Micro, Stepper, stage_parameters
from .summary import write_summary

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


class Outbox:
    """What this stage sends to the next, per step: one activation per micro-batch (`send`, as soon as the
    stage's backward is done), then the losses so far (`finish`). At most SEND_WINDOW steps stay in flight."""

    def __init__(self, dst: int | None, micro: int):
        self.dst, self.micro = dst, micro
        self.steps: deque[list] = deque()
        self.step, self.current = 0, []

    def begin(self, step: int) -> None:
        while len(self.steps) > SEND_WINDOW:  # do not run further ahead of the next stage
            for work, _ in self.steps.popleft():
                work.wait()
        self.step, self.current = step, []

    def send(self, k: int, x: torch.Tensor) -> None:  # before `item()` waits for the GPU, so the transfer overlaps
        if self.dst is not None:
            y = x.detach().float().contiguous()
            self.current.append((dist.isend(y, self.dst, tag=_tag(self.step, len(self.current), self.micro)), y))

    def finish(self, losses: torch.Tensor) -> None:
        self.current.append((dist.isend(losses, self.dst, tag=_tag(self.step, self.micro, self.micro)), losses))
        self.steps.append(self.current)

    def drain(self) -> None:
        for pending in self.steps:
            for work, _ in pending:
                work.wait()


class StageClock:
    """Where one rank's time goes, in seconds: loading its batch (`data`), waiting for the previous stage's
    output (`wait_input`: the pipeline's bubbles), its forward, loss, backward and step (`compute`; `loss.item()`
    synchronises a GPU), waiting for its sends to drain (`wait_send`: the next stage is slower) and checkpoints.
    Parts nest: time inside an inner part counts for it alone.

    The first logged window (fill and warm-up) is left out, as the bench leaves out its log row.
    """

    PARTS = ("data", "wait_input", "compute", "wait_send", "checkpoint")

    def __init__(self, step: int):
        self.open: list[str] = []
        self.reset(step)

    def reset(self, step: int) -> None:
        self.seconds, self.since, self.began = dict.fromkeys(self.PARTS, 0.0), step, time.perf_counter()
        self.mark = self.began

    def _charge(self) -> None:
        now = time.perf_counter()
        if self.open:
            self.seconds[self.open[-1]] += now - self.mark
        self.mark = now

    @contextmanager
    def __call__(self, part: str):
        self._charge()
        self.open.append(part)
        try:
            yield
        finally:
            self._charge()
            self.open.pop()

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
    cfg, ckpt = run_dir.prepare(cfg, out, write=writer)
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
    for module in model.stage_modules(rank) + [model.decoders[rank]]:
        module.to(device)  # the other stages stay on the CPU, untouched
    # One optimiser over the whole model, as in one process, but only this stage's parameters ever get a gradient
    # (AdamW skips the rest and keeps no state for them): its state dict has the single-process layout.
    optimizer = build_optimizer(model, peak_lr, t.weight_decay, t.betas)
    if ckpt is None and t.init_from:
        run_dir.initial_weights(model, t.init_from)
    start = run_dir.restore(ckpt, model, optimizer)
    own = set(map(id, stage_parameters(model)[rank]))
    for p in [p for p in optimizer.state if id(p) not in own]:
        del optimizer.state[p]
    if t.compile:
        model.compile_layers()
    log = RunLog(out, start, t.tensorboard) if writer else None
    if writer:
        print(f"blockmae: pipeline, stage k on rank k of {world}, {schedule.total} steps, batch "
              f"{t.batch_size * t.accum_steps}, effective lr {peak_lr:.3g}, device {device}"
              + (f", resuming at step {start}" if start else ""))

    loader = train_batches(cfg, dataset, start, device)
    n_visible = model.embed.num_tokens - num_hidden(cfg.mask.kind, cfg.mask.ratio, model.grid)
    inbox = Inbox(rank - 1, (t.batch_size, n_visible, m.width), t.accum_steps, world, device) if rank else None
    outbox = Outbox(rank + 1 if rank < last else None, t.accum_steps)
    window, clock = run_dir.LossWindow(world), StageClock(start)

    def micro_batches(step: int):
        """The same clips and masks as one process (drawn here from (seed, step)), and this stage's input."""
        for micro in range(t.accum_steps):
            with clock("data"):
                clips, _, skipped = next(loader)
                window.count_batch(clips.shape[0], len(skipped))
                video = to_model_input(clips.to(device, non_blocking=True), m.pixel_mean, m.pixel_std)
                mask = model.make_mask(video.shape[0], mask_generator(t.seed, step, micro), cfg.mask.kind,
                                       cfg.mask.ratio).to(device)
            draws = decoder_draws(t.seed, step, micro, video.shape[0])  # this stage's draw, as in one process
            if inbox is None:
                yield Micro(video, mask, draws=draws)
            else:
                with clock("wait_input"):
                    received = inbox.take(step, micro)
                yield Micro(video, mask, start=rank, inputs=received, draws=draws)

    # This rank's stage only.
    stepper = Stepper(model, optimizer, weights=t.loss_weights, lean=True, grad_clip=t.grad_clip, amp=t.amp,
                      after_stage=outbox.send)
    plan = dataclasses.replace(get_regime(t.regime).plan_for(world, 0, t), active=rank + 1)
    model.train()
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
            outbox.begin(step)
        with clock("compute"):
            values = stepper.backward(plan, micro_batches(step), t.accum_steps)
        run_dir.check_finite(values, step, out)
        lr = step_lr(cfg, schedule, 0, step, peak_lr)
        with clock("compute"):
            stepper.update(plan, lr)

        # Every stage's loss at this step, so far: they travel with the activations to the last rank, which logs them.
        if inbox is None:
            losses = torch.zeros(world, dtype=torch.float64, device=device)
        else:
            with clock("wait_input"):
                losses = inbox.take(step, t.accum_steps).clone()
        losses[rank] = values[rank]
        if rank < last:
            outbox.finish(losses)
        else:
            window.add(losses.tolist())
        done = step + 1
        bar.update(1)
        if writer and (done % t.log_every == 0 or done == schedule.total):
            log.write(window.row(done, schedule.steps_per_epoch, 0, lr))
        if done % t.checkpoint_every == 0 or done == schedule.total:
            with clock("checkpoint"):
                _checkpoint(model, optimizer, rank, done, out, cfg, control)
    times = clock.report(schedule.total)
    outbox.drain()
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
    run_dir.save(out, step, model, state, cfg)
