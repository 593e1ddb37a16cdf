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
`summary.json` adds where each rank's time went (`pipeline_time`, `clock.StageClock`).

`Pipeline` is a `run.Layout`: the run's set-up and the loop (`engine.train`) are those of one process.
"""

from __future__ import annotations

import dataclasses
from collections import deque

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..config import Config, ConfigError
from ..model import BlockMAE
from ..model.masking import num_hidden
from ..regimes import Plan
from .step import stage_parameters

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


def _tag(step: int, j: int, micro: int) -> int:
    return (step * (micro + 1) + j) % (1 << 30)


class Pipeline:
    """Stage `rank` of a pipelined run on this process, a `run.Layout`: the last rank writes the run directory."""

    replicas = 1  # every rank draws the whole batch and its masks

    def __init__(self, rank: int, world: int):
        self.rank, self.world, self.last = rank, world, world - 1
        self.control = dist.new_group(backend="gloo")  # checkpoint gathering on CPU, apart from the activations
        self.run, self.inbox, self.outbox = None, None, None  # (`ready`)

    @classmethod
    def join(cls, cfg: Config) -> "Pipeline":
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def writer(self) -> bool:
        """The last rank: it finishes each step last."""
        return self.rank == self.last

    @property
    def description(self) -> str:
        return f", pipeline: stage k on rank k of {self.world}"

    @property
    def step_options(self) -> dict:
        return {"lean": True, "after_stage": self.outbox.send}  # a stage's backward runs before it sends on

    def barrier(self) -> None:
        dist.barrier()

    def place(self, model: BlockMAE, device: torch.device) -> None:
        if model.num_stages != self.world:
            raise ConfigError(f"dist.mode=pipeline runs one stage per process: model.partition has {model.num_stages}"
                              f" stages but {self.world} processes were launched (torchrun --nproc-per-node "
                              f"{model.num_stages})")
        for module in model.stage_modules(self.rank) + [model.decoders[self.rank]]:
            module.to(device)  # the other stages stay on the CPU, untouched

    def ready(self, run) -> None:
        """The optimiser covers the whole model, as in one process, but only this stage's parameters ever get a
        gradient (AdamW skips the rest and keeps no state for them): its state dict has the one-process layout.
        A resumed run's state for the other stages is dropped."""
        self.run = run
        own = set(map(id, stage_parameters(run.model)[self.rank]))
        for p in [p for p in run.optimizer.state if id(p) not in own]:
            del run.optimizer.state[p]
        t, model = run.cfg.train, run.model
        self.outbox = Outbox(self.rank + 1 if self.rank < self.last else None, t.accum_steps)
        if self.rank:
            n_visible = model.embed.num_tokens - num_hidden(run.cfg.mask.kind, run.cfg.mask.ratio, model.grid)
            self.inbox = Inbox(self.rank - 1, (t.batch_size, n_visible, run.cfg.model.width), t.accum_steps,
                               self.world, run.device)

    def shard(self, batches: Sampler) -> Sampler:
        return batches

    def rows(self, global_batch: int) -> slice:
        return slice(None)

    def plan(self, plan: Plan) -> Plan:
        return dataclasses.replace(plan, active=self.rank + 1)  # the stages below run on the ranks before

    def begin(self, step: int) -> None:
        if self.inbox is not None:
            self.inbox.post(step)
            if step + 1 < self.run.schedule.end:
                self.inbox.post(step + 1)
        with self.run.clock("wait_send"):
            self.outbox.begin(step)

    def stage_input(self, step: int, micro: int) -> dict:
        if self.inbox is None:
            return {}
        with self.run.clock("wait_input"):
            return {"start": self.rank, "inputs": self.inbox.take(step, micro)}

    def gather(self, step: int, values: list[float | None]) -> list[float | None] | None:
        """Every stage's loss at this step: they travel with the activations to the last rank, which logs them."""
        if self.inbox is None:
            losses = torch.zeros(self.world, dtype=torch.float64, device=self.run.device)
        else:
            with self.run.clock("wait_input"):
                losses = self.inbox.take(step, self.run.cfg.train.accum_steps).clone()
        losses[self.rank] = values[self.rank]
        if not self.writer:
            self.outbox.finish(losses)
            return None
        return losses.tolist()

    def save(self, step: int) -> None:
        """Every stage hands its weights and optimiser state to the last rank, which writes one ordinary checkpoint."""
        model, optimizer = self.run.model, self.run.optimizer
        weights = model.state_dict()
        piece = {"weights": _cpu({k: weights[k] for k in stage_keys(model, self.rank)}),
                 "optimizer": _cpu(optimizer.state_dict()["state"])}
        pieces = [None] * self.world if self.writer else None
        dist.gather_object(piece, pieces, dst=self.last, group=self.control)
        if not self.writer:
            return
        for p in pieces:  # the other stages' tensors are not used here again until the end: keep them current
            model.load_state_dict(p["weights"], strict=False)
        state = optimizer.state_dict()
        state["state"] = {i: s for p in pieces for i, s in p["optimizer"].items()}
        state["param_groups"] = _cpu(state["param_groups"])
        self.run.save(step, state)

    def finish(self, times: dict) -> dict:
        """Let the last sends land, and give the writer every rank's `times` and the whole model."""
        self.outbox.drain()
        every_rank = [None] * self.world if self.writer else None
        dist.gather_object(times, every_rank, dst=self.last, group=self.control)
        if self.writer:  # for the held-out loss
            self.run.model.to(self.run.device)
        return {"dist": f"pipeline x{self.world}", "pipeline_time": every_rank}
