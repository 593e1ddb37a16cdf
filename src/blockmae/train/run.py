"""A training run's set-up (`Run.open`): its directory, config, dataset, model, schedule, optimiser, starting
weights and log, the same for every process layout; and what a layout plugs into the run and the loop (`Layout`).

The layouts are `distributed.Replicas` (one process, or data-parallel replicas: `dist.mode=none|ddp`) and
`pipeline.Pipeline` (one stage per process: `dist.mode=pipeline`). The loop itself is `engine.train`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch.utils.data import Sampler

from ..config import Config
from ..model import BlockMAE
from ..regimes import Plan
from . import run_dir
from .batches import train_dataset
from .clock import StageClock
from .logging import RunLog
from .optim import build_optimizer, effective_lr
from .schedule import Schedule, make_schedule


class Layout(Protocol):
    """How a process layout takes part in a run: where the model lives, which rows of each batch this process
    draws, what its step's input is, how the logged losses are gathered and how a checkpoint is saved."""

    writer: bool  # this process writes the run directory (config, log, checkpoints, summary)
    replicas: int  # processes that share each batch's rows (data parallel); 1: this process draws every row
    description: str  # for the banner: how the run is spread over processes ('' for one process)
    step_options: dict  # the `Stepper` options this layout sets (lean, sync, after_stage)

    def barrier(self) -> None: ...  # every process of the run waits here

    def place(self, model: BlockMAE, device: torch.device) -> None: ...  # the model's parts this process trains

    def ready(self, run: Run) -> None: ...  # the run is set up, its starting weights and optimiser state restored

    def shard(self, batches: Sampler) -> Sampler: ...  # this process's rows of every batch of indices

    def rows(self, global_batch: int) -> slice: ...  # this process's rows of a global batch (and of its masks)

    def plan(self, plan: Plan) -> Plan: ...  # the part of a step's plan this process computes

    def begin(self, step: int) -> None: ...  # before the step's batches are drawn

    def stage_input(self, step: int, micro: int) -> dict: ...  # `Micro`'s start and inputs ({}: from the clip)

    def gather(self, step: int, values: list[float | None]) -> list[float | None] | None: ...  # to log; None: none

    def save(self, step: int) -> None: ...  # the checkpoint at `step`

    def finish(self, times: dict) -> dict: ...  # after the last step (`times`: this process's clock): summary keys


@dataclass
class Run:
    cfg: Config  # the config it trains with (a resumed run's saved one)
    out: Path
    device: torch.device
    dataset: object
    model: BlockMAE
    schedule: Schedule
    peak_lr: float
    optimizer: torch.optim.Optimizer
    start: int  # the step it starts (or resumes) at
    log: RunLog | None  # the writer's log.jsonl
    clock: StageClock

    @classmethod
    def open(cls, cfg: Config, out: Path, device: torch.device, layout: Layout) -> Run:
        """Prepare `out` (the writer first; the others then read what it prepared) and build everything the loop
        needs, resumed from the newest intact checkpoint. Every process builds the same initial model, as one
        process would."""
        if not layout.writer:
            layout.barrier()
        cfg, ckpt = run_dir.prepare(cfg, out, write=layout.writer)
        if layout.writer:
            layout.barrier()
        t = cfg.train
        torch.manual_seed(t.seed)
        dataset = train_dataset(cfg)
        model = BlockMAE(cfg.model)
        layout.place(model, device)
        schedule = make_schedule(cfg, len(dataset), model.num_stages)
        global_batch = t.batch_size * t.accum_steps
        peak_lr = effective_lr(t.lr, global_batch)
        optimizer = build_optimizer(model, peak_lr, t.weight_decay, t.betas)
        if ckpt is None and t.init_from:
            run_dir.initial_weights(model, t.init_from)
        start = run_dir.restore(ckpt, model, optimizer)
        log = RunLog(out, start, t.tensorboard) if layout.writer else None
        run = cls(cfg, out, device, dataset, model, schedule, peak_lr, optimizer, start, log, StageClock(start))
        layout.ready(run)
        if t.compile:  # per layer and decoder, so the memory-lean per-stage backward still works
            model.compile_layers()
        if layout.writer:
            print(f"blockmae: {t.regime}, K={model.num_stages} stages {model.partition}, {schedule.total} steps, "
                  f"batch {global_batch}, effective lr {peak_lr:.3g} (base {t.lr:g} x {global_batch}/256), device "
                  f"{device}{layout.description}"
                  + (f", then {schedule.fit_steps} steps fitting the monitors" if schedule.fit_steps else "")
                  + (f", resuming at step {start}" if start else ""))
        return run

    def save(self, step: int, optimizer_state: dict | None = None) -> None:
        """The checkpoint at `step` (`optimizer_state`: one gathered from several processes; else this one's)."""
        state = self.optimizer.state_dict() if optimizer_state is None else optimizer_state
        run_dir.save(self.out, step, self.model, state, self.cfg)
