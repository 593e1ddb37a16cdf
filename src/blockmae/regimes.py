"""The training regimes: one entry per regime, read by config validation, the model, the engine,
the findings and the figures. Adding a regime means adding one `Regime` here (and its test).

A regime is a `Plan` over the staged model (docs/design.md): whether a stage's input is detached
from the stage before, which decoders' losses reach the encoder, and, for phased regimes, which
stages are frozen in the current phase.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from .errors import ConfigError


@dataclass(frozen=True)
class Plan:
    detach: bool  # cut the graph between consecutive stages
    encoder_loss: tuple[bool, ...]  # stage k's loss reaches the encoder; else its decoder reads detached features
    frozen: tuple[bool, ...]  # stage k runs without grad and computes no loss (sequential: earlier phases)
    active: int  # stages computed (sequential: up to the current phase)


@dataclass(frozen=True)
class Regime:
    name: str  # the value of train.regime
    label: str  # how figures and tables name it
    color: str  # its colour in every figure (Okabe-Ito, colour-blind safe)
    blockwise: bool  # trained without end-to-end backpropagation (gradient-isolated stages)
    phased: bool  # one phase per stage (train.phase_split), earlier stages frozen
    plan: Callable[[int, int], Plan]  # (number of stages K, 0-based phase) -> the plan of that step

    def plan_for(self, num_stages: int, phase: int = 0) -> Plan:
        return self.plan(num_stages, phase)


def _last_only(k: int) -> tuple[bool, ...]:
    return tuple(i == k - 1 for i in range(k))


REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("e2e", "E2E", "#0072B2", blockwise=False, phased=False,
           plan=lambda k, phase: Plan(False, _last_only(k), (False,) * k, k)),
    Regime("simultaneous", "Simultaneous", "#E69F00", blockwise=True, phased=False,
           plan=lambda k, phase: Plan(True, (True,) * k, (False,) * k, k)),
    Regime("sequential", "Sequential", "#009E73", blockwise=True, phased=True,
           plan=lambda k, phase: Plan(True, (True,) * k, tuple(i < phase for i in range(k)), phase + 1)),
    Regime("deep-supervision", "Deep supervision", "#CC79A7", blockwise=False, phased=False,
           plan=lambda k, phase: Plan(False, (True,) * k, (False,) * k, k)),
)}

# What analysis rows may carry besides trained regimes: weights from elsewhere, and the random-init floor.
OTHER_SOURCES = {"pretrained": ("Pretrained", "#D55E00"), "random": ("Random init", "#7F7F7F")}


def get_regime(name: str, key: str = "train.regime") -> Regime:
    if name not in REGIMES:
        close = difflib.get_close_matches(name, list(REGIMES), n=1)
        raise ConfigError(f"{key}='{name}' must be one of {', '.join(REGIMES)}"
                          + (f"; did you mean '{close[0]}'?" if close else ""))
    return REGIMES[name]


def regime_plan(name: str, num_stages: int, phase: int = 0) -> Plan:
    """The plan of a regime at a step; `phase` (0-based) is the stage being trained in phased regimes."""
    return get_regime(name).plan_for(num_stages, phase)


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
