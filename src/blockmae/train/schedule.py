"""How long a run trains, where each phase of a phased regime ends, and the learning rate at every step."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, ConfigError
from ..regimes import get_regime
from .optim import cosine_lr


@dataclass
class Schedule:
    """How many steps, and for phased regimes (`sequential`), where each stage's phase ends; then
    `fit_steps` steps that fit E2E's monitors on the frozen encoder (`train.monitor_fit_steps`)."""
    total: int
    phase_ends: list[int]
    steps_per_epoch: int
    fit_steps: int = 0

    @property
    def end(self) -> int:
        """The step the run finishes at: training, then fitting the monitors."""
        return self.total + self.fit_steps

    def fitting(self, step: int) -> bool:
        return step >= self.total

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
    regime = get_regime(t.regime)
    if regime.phased:
        ends = regime.phase_ends(total, num_stages, t)
        if any(b <= a for a, b in zip([0] + ends[:-1], ends)):
            raise ConfigError(f"train.max_steps={total} is too short to give each of {len(ends)} {t.regime} phases a "
                              f"step")
    else:
        ends = [total]
    return Schedule(total, ends, per_epoch, t.monitor_fit_steps)


def step_lr(cfg: Config, schedule: Schedule, phase: int, step: int, peak_lr: float) -> float:
    """Warm-up + cosine over the run (phased regimes: over each phase; fitting the monitors: over the fit steps,
    with 5% warm-up), a function of the step alone."""
    t = cfg.train
    if schedule.fitting(step):
        fit = schedule.fit_steps
        return cosine_lr(step - schedule.total, fit, peak_lr, t.min_lr, max(1, round(0.05 * fit)))
    lr_start = schedule.phase_start(phase)
    phase_len = schedule.phase_ends[phase] - lr_start
    warmup = t.warmup_steps if t.warmup_steps is not None else max(1, round(0.05 * phase_len))
    return cosine_lr(step - lr_start, phase_len, peak_lr, t.min_lr, warmup)
