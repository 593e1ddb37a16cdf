"""One training step, the same for every regime and every trainer (single process, data parallel,
pipelined), the bench and the tests: each micro-batch's forward under the regime's `Plan` with the
memory-lean backward, the gradient-sync hooks, then gradient clipping and the optimiser update.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

import torch

from ..model import BlockMAE
from ..regimes import Plan


@dataclass
class Micro:
    """One micro-batch: the normalised clips, their masks, and (pipeline) the stage input computed elsewhere."""
    video: torch.Tensor
    mask: torch.Tensor
    start: int = 0  # the first stage computed here
    inputs: torch.Tensor | None = None  # stage start-1's output when start > 0
    # decoder masking: (stage, n_hidden, ratio) -> kept positions (B, n_keep) (`batches.decoder_draws`); None:
    # drawn from torch's global generator
    draws: Callable[[int, int, float], torch.Tensor] | None = None


class GradientSync(Protocol):
    """What data parallelism hooks into a step (`distributed.Replicas`); one process needs none."""

    def start_averaging(self, k: int, params: list[torch.nn.Parameter]) -> None: ...

    def average_gradients(self, groups: list[list[torch.nn.Parameter]]) -> None: ...


def stage_parameters(model: BlockMAE) -> list[list[torch.nn.Parameter]]:
    """Each stage's encoder parameters plus its decoder's: the unit a blockwise stage optimises."""
    return [[p for m in model.stage_modules(k) + [model.decoders[k]] for p in m.parameters()]
            for k in range(model.num_stages)]


class Stepper:
    """Trains `model` one step at a time: `step` = `backward` over the micro-batches, then `update`.

    `weights`: each stage's loss weight; `lean`: backpropagate each stage's loss as soon as it exists
    (only one stage's graph alive); `sync`: data-parallel gradient averaging, launched per stage as soon
    as its gradient is final; `after_stage(k, output)`: sees each stage's output (the pipeline sends it on);
    """

    def __init__(self, model: BlockMAE, optimizer: torch.optim.Optimizer | None = None, *,
                 weights: list[float] | None = None, lean: bool = True, grad_clip: float | None = None,
                 amp: str = "none", sync: GradientSync | None = None,
                 after_stage: Callable[[int, torch.Tensor], None] | None = None):
        self.model, self.optimizer, self.lean, self.grad_clip, self.sync = model, optimizer, lean, grad_clip, sync
        self.weights = weights or [1.0] * model.num_stages
        self.amp, self.after_stage = amp, after_stage
        self.stage_params = stage_parameters(model)

    def backward(self, plan: Plan, micros: Iterable[Micro], count: int) -> list[float | None]:
        """Forward and backward over `count` micro-batches, gradients accumulating as their mean; returns each
        stage's loss averaged over them (None: the stage computed none), checked by the caller before `update`."""
        scale = 1.0 / count

        def weight(k: int) -> float:  # the config's weight times the plan's (1 for every built-in regime)
            return self.weights[k] * plan.stages[k].weight

        values: list[float | None] = [None] * self.model.num_stages
        for j, micro in enumerate(micros):
            last = j == count - 1
            # The data's device: in the pipeline a rank holds only its own stage there (the embedding may be on the CPU).
            autocast = (torch.autocast(micro.video.device.type, dtype=torch.bfloat16) if self.amp == "bf16"
                        else nullcontext())

            def backward_now(k: int, loss: torch.Tensor) -> None:
                (loss * weight(k) * scale).backward()
                # Stage k's gradient is final (unless an overlapping next stage adds to it): average it while the
                # next stages compute.
                if self.sync is not None and plan.isolated and last:
                    self.sync.start_averaging(k, self.stage_params[k])

            with autocast:
                losses = self.model.run_plan(micro.video, micro.mask, plan, backward=backward_now if self.lean else None,
                                             start=micro.start, inputs=micro.inputs, after_stage=self.after_stage,
                                             draws=micro.draws)
            pending = [loss * weight(k) for k, loss in enumerate(losses) if loss is not None and loss.requires_grad]
            if pending:
                (sum(pending) * scale).backward()
            for k, loss in enumerate(losses):
                if loss is not None:
                    values[k] = (values[k] or 0.0) + loss.item() * scale
        return values

    def update(self, plan: Plan, lr: float) -> None:
        """Average gradients over replicas, clip (each blockwise stage on its own: they are separate learners),
        and step the optimiser at `lr`."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.sync is not None:
            self.sync.average_gradients(self.stage_params)
        if self.grad_clip:
            groups = self.stage_params if plan.detached else [sum(self.stage_params, [])]
            for params in groups:
                torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, plan: Plan, micros: Iterable[Micro], count: int, lr: float) -> list[float | None]:
        values = self.backward(plan, micros, count)
        self.update(plan, lr)
        return values
