"""The training regimes: one entry per regime, read by config validation, the model, the engine,
the findings and the figures. Adding a regime means adding one `Regime` here (and its test).

A regime is a `Plan` over the staged model (docs/design.md): whether a stage's input is detached
from the stage before, which decoders' losses reach the encoder, and, for phased regimes, which
stages are frozen in the current phase.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Callable

from .errors import ConfigError


@dataclass(frozen=True)
class Plan:
    detach: bool  # cut the graph between consecutive stages
    encoder_loss: tuple[bool, ...]  # stage k's loss reaches the encoder; else its decoder reads detached features
    frozen: tuple[bool, ...]  # stage k runs without grad and computes no loss (sequential: earlier phases)
    active: int  # stages computed (sequential: up to the current phase)
    overlap: int = 0  # detached regimes: stage k's loss also trains the last `overlap` layers of stage k-1
    noise: float = 0.0  # detached regimes, in training: Gaussian noise (std relative to the input's RMS) on stage inputs
    target_pool: tuple[int, ...] = ()  # stage k's target pooled over target_pool[k]^2 pixels of each frame; () all 1
    monitors: bool = True  # monitor decoders (losses that do not reach the encoder) run; off: skipped this step


@dataclass(frozen=True)
class RegimeSettings:
    """The train.* values a regime's plan or phases may read (a TrainConfig has the same names)."""
    overlap: int = 1
    interface_noise: float = 0.1
    finetune_steps: int = 100
    frozen_stages: int = 1
    target_pool: int = 2
    phase_split: list[float] | None = None


@dataclass(frozen=True)
class Regime:
    name: str  # the value of train.regime
    label: str  # how figures and tables name it
    color: str  # its colour in every figure (Okabe-Ito and Tol, colour-blind safe)
    blockwise: bool  # trained without end-to-end backpropagation
    plan: Callable[[int, int, RegimeSettings], Plan]  # (stages K, 0-based phase, settings) -> that step's plan
    # (total steps, K, settings) -> where each phase ends; None: one phase
    phases: Callable[[int, int, RegimeSettings], list[int]] | None = None

    @property
    def phased(self) -> bool:
        return self.phases is not None

    def plan_for(self, num_stages: int, phase: int = 0, settings: RegimeSettings | None = None) -> Plan:
        return self.plan(num_stages, phase, settings or RegimeSettings())

    def phase_ends(self, total: int, num_stages: int, settings: RegimeSettings | None = None) -> list[int]:
        return self.phases(total, num_stages, settings or RegimeSettings()) if self.phases else [total]


def split_steps(total: int, shares: list[float]) -> list[int]:
    """End step (exclusive) of each phase when `total` steps are shared out in proportion to `shares`."""
    cum, ends = 0.0, []
    for s in shares:
        cum += s
        ends.append(round(total * cum / sum(shares)))
    ends[-1] = total
    return ends


def _last_only(k: int) -> tuple[bool, ...]:
    return tuple(i == k - 1 for i in range(k))


def _e2e(k: int, phase: int, s: RegimeSettings) -> Plan:
    return Plan(False, _last_only(k), (False,) * k, k)


def monitor_fit_plan(k: int) -> Plan:
    """Fitting E2E's monitors after training (`train.monitor_fit_steps`): stages 1..K-1 run without a graph and
    each trains only its own decoder on its output; the top stage and its decoder do not run."""
    return Plan(False, (False,) * k, (False,) * k, k - 1)


def step_plan(regime: Regime, num_stages: int, phase: int, settings: RegimeSettings | None, step: int,
              monitor_every: int = 1, fitting: bool = False) -> Plan:
    """The plan of one training step, as the engine and the bench run it: the regime's plan with its monitors on
    only every `monitor_every`-th step (0: never), or, `fitting`, the plan that fits the monitors after training."""
    if fitting:
        return monitor_fit_plan(num_stages)
    plan = regime.plan_for(num_stages, phase, settings)
    return replace(plan, monitors=False) if monitor_every == 0 or step % monitor_every else plan


def _simultaneous(k: int, phase: int, s: RegimeSettings) -> Plan:
    return Plan(True, (True,) * k, (False,) * k, k)


def _coarse_targets(k: int, phase: int, s: RegimeSettings) -> Plan:
    pools = tuple(s.target_pool if i >= k // 2 else 1 for i in range(k)) if k > 1 else (1,)
    return Plan(True, (True,) * k, (False,) * k, k, target_pool=pools)


REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("e2e", "E2E", "#0072B2", blockwise=False, plan=_e2e),
    Regime("simultaneous", "Simultaneous", "#E69F00", blockwise=True, plan=_simultaneous),
    Regime("sequential", "Sequential", "#009E73", blockwise=True,
           plan=lambda k, phase, s: Plan(True, (True,) * k, tuple(i < phase for i in range(k)), phase + 1),
           phases=lambda total, k, s: split_steps(total, s.phase_split or [1.0] * k)),
    Regime("deep-supervision", "Deep supervision", "#CC79A7", blockwise=False,
           plan=lambda k, phase, s: Plan(False, (True,) * k, (False,) * k, k)),
    # LoCo-style overlap (Xiong et al. 2020): gradients still cross no more than `train.overlap` layers.
    Regime("overlap", "Overlapping blocks", "#882255", blockwise=True,
           plan=lambda k, phase, s: Plan(True, (True,) * k, (False,) * k, k, overlap=s.overlap)),
    # Noise on each stage's detached input (Siddiqui et al. 2023 report it helps blockwise SSL).
    Regime("noisy", "Noisy interfaces", "#44AA99", blockwise=True,
           plan=lambda k, phase, s: Plan(True, (True,) * k, (False,) * k, k, noise=s.interface_noise)),
    # Simultaneous, then `train.finetune_steps` of end-to-end fine-tuning of the whole encoder with the top decoder.
    Regime("blockwise-finetune", "Blockwise + E2E fine-tune", "#999933", blockwise=False,
           plan=lambda k, phase, s: (_simultaneous if phase == 0 else _e2e)(k, phase, s),
           phases=lambda total, k, s: [total - s.finetune_steps, total]),
    # LocalMIM-style target change (Wang et al. 2023: coarser targets for higher layers): the upper half of the
    # stages predict the hidden tubelets' normalised pixels pooled over train.target_pool^2 cells of each frame.
    # Aimed at late-block saturation: the fine texture of a 90%-masked clip is what no stage can predict, yet it
    # dominates the pixel loss of every stage alike; a coarser target gives the upper stages a different job.
    Regime("coarse-targets", "Coarse targets (upper stages)", "#332288", blockwise=True, plan=_coarse_targets),
    # Frozen-base continuation (with train.init_from a blockwise run): stages 1..train.frozen_stages stay as they
    # are, the rest train end to end with the top decoder. Splits a gap into what the lower stages hand up and
    # what the upper ones fail to learn.
    Regime("frozen-base", "Frozen base + E2E top", "#AA4499", blockwise=False,
           plan=lambda k, phase, s: Plan(False, _last_only(k), tuple(i < s.frozen_stages for i in range(k)), k)),
)}

# What analysis rows may carry besides trained regimes: weights from elsewhere, and the random-init floor.
OTHER_SOURCES = {"pretrained": ("Pretrained", "#D55E00"), "random": ("Random init", "#7F7F7F")}


def get_regime(name: str, key: str = "train.regime") -> Regime:
    if name not in REGIMES:
        close = difflib.get_close_matches(name, list(REGIMES), n=1)
        raise ConfigError(f"{key}='{name}' must be one of {', '.join(REGIMES)}"
                          + (f"; did you mean '{close[0]}'?" if close else ""))
    return REGIMES[name]


def regime_plan(name: str, num_stages: int, phase: int = 0, settings: RegimeSettings | None = None) -> Plan:
    """The plan of a regime at a step; `phase` (0-based) is the current phase of phased regimes."""
    return get_regime(name).plan_for(num_stages, phase, settings)


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
