"""The training regimes: one entry per regime, read by config validation, the model, the trainers, the bench,
the findings and the figures. Adding a regime means adding one `Regime` here (and its test): its plan, its
settings and its names; nothing else needs to name it.

A regime is a `Plan` over the staged model (docs/design.md): per stage, whether its input is detached from the
stage below, whether its loss reaches the encoder, whether it is frozen, how many of the stage below's layers its
loss also trains, the noise on its input, how coarse its target is and how much its loss weighs. Its settings
are a small frozen dataclass (defaults and range checks) that the config holds as `train.regime_settings`.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Callable

from .errors import ConfigError

SETTINGS_KEY = "train.regime_settings"  # where the config holds the chosen regime's settings


@dataclass(frozen=True)
class StagePlan:
    """What one stage does in a step."""
    # Its graph is its own: its input is cut from the stage below's graph (stage 1's input, the embedding, is part
    # of stage 1), so its loss is backpropagated as soon as it exists.
    detach: bool = True
    encoder_loss: bool = True  # its loss reaches the encoder; else its decoder reads detached features (a monitor)
    frozen: bool = False  # runs without grad, computes no loss and hands up nothing to overlap
    lead: int = 0  # detached input: its loss also trains the last `lead` layers of the stage below (re-run here)
    noise: float = 0.0  # in training: Gaussian noise on its detached input, std relative to the input's RMS
    pool: int = 1  # > 1: its target is pooled over pool x pool pixels of each frame (objective.coarse_targets)
    weight: float = 1.0  # its loss's weight (times train.loss_weights)


@dataclass(frozen=True)
class Plan:
    stages: tuple[StagePlan, ...]  # one per stage of the model
    active: int  # stages computed (sequential: up to the current phase)
    monitors: bool = True  # monitor decoders (losses that do not reach the encoder) run; off: skipped this step

    @property
    def detached(self) -> bool:
        """Every stage's graph is its own: blockwise learners (each stage clips its own gradients)."""
        return all(s.detach for s in self.stages)

    @property
    def isolated(self) -> bool:
        """Detached and no stage reaching into the one below: a stage's gradient is final once its loss is
        backpropagated, so data parallelism may average it while the next stages compute."""
        return self.detached and not any(s.lead for s in self.stages)


def uniform(k: int, active: int | None = None, **stage) -> Plan:
    """K stages alike (the `StagePlan` fields given), `active` of them computed (default all)."""
    return Plan((StagePlan(**stage),) * k, k if active is None else active)


@dataclass(frozen=True)
class Settings:
    """A regime with no settings; a regime with some subclasses it (each field a default, `check` its ranges)."""

    def check(self, partition: list[int], patch: int) -> None:
        """Refuse values that do not fit the model (its stages' layer counts and its patch size)."""


def _refuse(name: str, value, why: str) -> ConfigError:
    return ConfigError(f"{SETTINGS_KEY}.{name}={value} {why}")


@dataclass(frozen=True)
class PhaseShares(Settings):
    phase_split: list[float] | None = None  # share of the steps for each stage's phase; None: equal

    def check(self, partition: list[int], patch: int) -> None:
        if self.phase_split is None:
            return
        if len(self.phase_split) != len(partition):
            raise _refuse("phase_split", self.phase_split, f"has {len(self.phase_split)} entries but the model has "
                                                           f"{len(partition)} stages")
        if any(s <= 0 for s in self.phase_split):
            raise _refuse("phase_split", self.phase_split, "must be positive shares")


@dataclass(frozen=True)
class Overlap(Settings):
    overlap: int = 1  # layers of the stage below that a stage's loss also trains

    def check(self, partition: list[int], patch: int) -> None:
        if self.overlap < 1:
            raise _refuse("overlap", self.overlap, "must be at least 1 (layers of the previous stage a stage's loss "
                                                   "also trains)")
        if self.overlap > min(partition[:-1], default=self.overlap):
            raise _refuse("overlap", self.overlap, f"is more layers than a stage has (model.partition={partition}); "
                                                   f"use at most {min(partition[:-1])}")


@dataclass(frozen=True)
class InterfaceNoise(Settings):
    interface_noise: float = 0.1  # std of the noise on each detached stage input, relative to the input's RMS

    def check(self, partition: list[int], patch: int) -> None:
        if self.interface_noise < 0:
            raise _refuse("interface_noise", self.interface_noise, "must be >= 0")


@dataclass(frozen=True)
class Finetune(Settings):
    finetune_steps: int = 100  # the last steps, trained end to end

    def check(self, partition: list[int], patch: int) -> None:
        if self.finetune_steps < 1:
            raise _refuse("finetune_steps", self.finetune_steps, "must be at least 1")


@dataclass(frozen=True)
class TargetPool(Settings):
    target_pool: int = 2  # the upper stages' targets are pooled over target_pool x target_pool pixels

    def check(self, partition: list[int], patch: int) -> None:
        p = self.target_pool
        if p < 2 or patch % p or p >= patch:
            raise _refuse("target_pool", p, f"must be at least 2, divide model.patch={patch} and be smaller than it "
                                            "(a whole-patch mean is 0 after the per-tubelet normalisation)")


@dataclass(frozen=True)
class FrozenStages(Settings):
    frozen_stages: int = 1  # stages 1..frozen_stages run frozen

    def check(self, partition: list[int], patch: int) -> None:
        k = len(partition)
        if not 0 <= self.frozen_stages < k:
            raise _refuse("frozen_stages", self.frozen_stages, f"must be from 0 to {k - 1} (model.partition has {k} "
                                                               "stages; at least the top one trains)")


@dataclass(frozen=True)
class Regime:
    name: str  # the value of train.regime
    label: str  # how figures and tables name it
    color: str  # its colour in every figure (Okabe-Ito and Tol, colour-blind safe)
    blockwise: bool  # trained without end-to-end backpropagation
    plan: Callable[[int, int, Any], Plan]  # (stages K, 0-based phase, its settings) -> that step's plan
    # (total steps, K, its settings) -> where each phase ends; None: one phase
    phases: Callable[[int, int, Any], list[int]] | None = None
    settings: type[Settings] = Settings  # what train.regime_settings holds for it
    fits_monitors: bool = False  # train.monitor_fit_steps may fit its monitor decoders after training
    bench: str | None = None  # its row of `blockmae bench`'s table (K=4, memory-lean); None: none of its own

    @property
    def phased(self) -> bool:
        return self.phases is not None

    def settings_of(self, given: Any = None) -> Settings:
        """Its settings from `given`: its settings, a mapping of them, or a train config holding them
        (`regime_settings`); None: the defaults."""
        given = getattr(given, "regime_settings", given)
        if given is None:
            return self.settings()
        if isinstance(given, self.settings):
            return given
        if dataclasses.is_dataclass(given):
            given = dataclasses.asdict(given)
        if isinstance(given, Mapping):
            names = {f.name for f in dataclasses.fields(self.settings)}
            return self.settings(**{k: v for k, v in given.items() if k in names})
        raise TypeError(f"settings for regime '{self.name}': expected {self.settings.__name__}, got {given!r}")

    def plan_for(self, num_stages: int, phase: int = 0, settings: Any = None) -> Plan:
        return self.plan(num_stages, phase, self.settings_of(settings))

    def phase_ends(self, total: int, num_stages: int, settings: Any = None) -> list[int]:
        return self.phases(total, num_stages, self.settings_of(settings)) if self.phases else [total]


def split_steps(total: int, shares: list[float]) -> list[int]:
    """End step (exclusive) of each phase when `total` steps are shared out in proportion to `shares`."""
    cum, ends = 0.0, []
    for s in shares:
        cum += s
        ends.append(round(total * cum / sum(shares)))
    ends[-1] = total
    return ends


def _e2e(k: int, phase: int, s: Settings, frozen: int = 0) -> Plan:
    """The top decoder trains the encoder; the others monitor; stages 1..`frozen` run frozen."""
    return Plan(tuple(StagePlan(detach=False, encoder_loss=i == k - 1, frozen=i < frozen) for i in range(k)), k)


def _simultaneous(k: int, phase: int, s: Settings) -> Plan:
    return uniform(k)


def _coarse_targets(k: int, phase: int, s: TargetPool) -> Plan:
    return Plan(tuple(StagePlan(pool=s.target_pool if k > 1 and i >= k // 2 else 1) for i in range(k)), k)


def monitor_fit_plan(k: int) -> Plan:
    """Fitting E2E's monitors after training (`train.monitor_fit_steps`): stages 1..K-1 run without a graph and
    each trains only its own decoder on its output; the top stage and its decoder do not run."""
    return uniform(k, k - 1, detach=False, encoder_loss=False)


def evaluation_plan(k: int) -> Plan:
    """Every stage's loss on one graph (`BlockMAE.losses`: the held-out per-stage loss)."""
    return uniform(k, detach=False)


def step_plan(regime: Regime, num_stages: int, phase: int, settings: Any, step: int,
              monitor_every: int = 1, fitting: bool = False) -> Plan:
    """The plan of one training step, as the engine and the bench run it: the regime's plan with its monitors on
    only every `monitor_every`-th step (0: never), or, `fitting`, the plan that fits the monitors after training."""
    if fitting:
        return monitor_fit_plan(num_stages)
    plan = regime.plan_for(num_stages, phase, settings)
    return replace(plan, monitors=False) if monitor_every == 0 or step % monitor_every else plan


REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("e2e", "E2E", "#0072B2", blockwise=False, plan=_e2e, fits_monitors=True),
    Regime("simultaneous", "Simultaneous", "#E69F00", blockwise=True, plan=_simultaneous),
    Regime("sequential", "Sequential", "#009E73", blockwise=True, settings=PhaseShares, bench="seq-K4",
           plan=lambda k, phase, s: Plan(tuple(StagePlan(frozen=i < phase) for i in range(k)), phase + 1),
           phases=lambda total, k, s: split_steps(total, s.phase_split or [1.0] * k)),
    Regime("deep-supervision", "Deep supervision", "#CC79A7", blockwise=False,
           plan=lambda k, phase, s: uniform(k, detach=False)),
    # LoCo-style overlap (Xiong et al. 2020): gradients still cross no more than `overlap` layers.
    Regime("overlap", "Overlapping blocks", "#882255", blockwise=True, settings=Overlap, bench="overlap-K4-lean",
           plan=lambda k, phase, s: Plan(tuple(StagePlan(lead=s.overlap if i else 0) for i in range(k)), k)),
    # Noise on each stage's detached input (Siddiqui et al. 2023 report it helps blockwise SSL).
    Regime("noisy", "Noisy interfaces", "#44AA99", blockwise=True, settings=InterfaceNoise, bench="noisy-K4-lean",
           plan=lambda k, phase, s: Plan(tuple(StagePlan(noise=s.interface_noise if i else 0.0)
                                               for i in range(k)), k)),
    # Simultaneous, then `finetune_steps` of end-to-end fine-tuning of the whole encoder with the top decoder.
    Regime("blockwise-finetune", "Blockwise + E2E fine-tune", "#999933", blockwise=False, settings=Finetune,
           plan=lambda k, phase, s: (_simultaneous if phase == 0 else _e2e)(k, phase, s),
           phases=lambda total, k, s: [total - s.finetune_steps, total]),
    # LocalMIM-style target change (Wang et al. 2023: coarser targets for higher layers): the upper half of the
    # stages predict the hidden tubelets' normalised pixels pooled over target_pool^2 cells of each frame.
    # Aimed at late-block saturation: the fine texture of a 90%-masked clip is what no stage can predict, yet it
    # dominates the pixel loss of every stage alike; a coarser target gives the upper stages a different job.
    Regime("coarse-targets", "Coarse targets (upper stages)", "#332288", blockwise=True, settings=TargetPool,
           plan=_coarse_targets, bench="coarse-K4-lean"),
    # Frozen-base continuation (with train.init_from a blockwise run): stages 1..frozen_stages stay as they are,
    # the rest train end to end with the top decoder. Splits a gap into what the lower stages hand up and what the
    # upper ones fail to learn.
    Regime("frozen-base", "Frozen base + E2E top", "#AA4499", blockwise=False, settings=FrozenStages,
           plan=lambda k, phase, s: _e2e(k, phase, s, frozen=s.frozen_stages)),
)}

# The regimes other modules name by their role: the end-to-end reference every regime is compared with, and
# plain blockwise training (the default, and the one the bench's levers act on).
REFERENCE = "e2e"
DEFAULT = "simultaneous"
# Training one stage at a time, each phase freezing the stages below: finding 6 (does it reach a lower loss but
# probe worse than E2E) is a claim about this regime alone, and a study's `sequential_budget` gives only its runs
# K x the steps. No property of the entry picks it out: blockwise-finetune has phases too.
SEQUENTIAL = "sequential"
# E2E training above stages 1..frozen_stages held fixed: the regime a frozen-base continuation
# (`experiments.continuation`) retrains a blockwise run in, to split its gap to the reference (finding 9).
CONTINUATION = "frozen-base"

# What analysis rows may carry besides trained regimes: weights from elsewhere, and the random-init floor.
OTHER_SOURCES = {"pretrained": ("Pretrained", "#D55E00"), "random": ("Random init", "#7F7F7F")}


def get_regime(name: str, key: str = "train.regime") -> Regime:
    if name not in REGIMES:
        close = difflib.get_close_matches(name, list(REGIMES), n=1)
        raise ConfigError(f"{key}='{name}' must be one of {', '.join(REGIMES)}"
                          + (f"; did you mean '{close[0]}'?" if close else ""))
    return REGIMES[name]


def regime_plan(name: str, num_stages: int, phase: int = 0, settings: Any = None) -> Plan:
    """The plan of a regime at a step; `phase` (0-based) is the current phase of phased regimes."""
    return get_regime(name).plan_for(num_stages, phase, settings)


def setting_names() -> set[str]:
    """Every setting some regime declares."""
    return {f.name for r in REGIMES.values() for f in dataclasses.fields(r.settings)}


def blockwise_regimes() -> tuple[str, ...]:
    return tuple(name for name, r in REGIMES.items() if r.blockwise)


def display_name(name: str) -> str:
    if name in REGIMES:
        return REGIMES[name].label
    return OTHER_SOURCES.get(name, (name,))[0]


def color_of(name: str) -> str | None:
    if name in REGIMES:
        return REGIMES[name].color
    return OTHER_SOURCES[name][1] if name in OTHER_SOURCES else None


def display_order() -> list[str]:
    return list(REGIMES) + list(OTHER_SOURCES)
