"""The four outcomes the screen's rules share (the loss rule in `screen.losses`, the probe rule in `screen.probes`).

A part of a rule is a difference over seeds (its 95% t-interval) against a bar: met when the mean reaches the bar
and the interval clears zero; not met when the whole interval lies below the bar; inconclusive when the bar lies
inside the interval or the interval reaches zero; not measured when there is no interval (one seed, or one
random-init encoder for a difference between groups). A rule is met when every part is.
"""

from __future__ import annotations

import math

from ..report.verdicts import Difference

MET, NOT_MET, INCONCLUSIVE, NOT_MEASURED = "met", "not met", "inconclusive", "not measured"


def outcome_of(d: Difference, bar: float) -> dict:
    """The difference as a dict, with its bar and its outcome."""
    if d.n < 2 or not math.isfinite(d.low):
        outcome = NOT_MEASURED
    elif d.mean >= bar and d.low > 0:
        outcome = MET
    elif d.high < bar:
        outcome = NOT_MET
    else:
        outcome = INCONCLUSIVE
    return {**d.as_dict(), "bar": bar, "outcome": outcome}


def combined(outcomes: list[str]) -> str:
    """Met when every part is; not met when any part is; then not measured, then inconclusive."""
    for outcome in (NOT_MET, NOT_MEASURED, INCONCLUSIVE):
        if outcome in outcomes:
            return outcome
    return MET
