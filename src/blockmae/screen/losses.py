"""The screen's loss rule: does the deep encoder's top stage lie far enough below the best trivial predictor, and
further than a shallow view of it does?

A margin is how far a held-out loss lies below the best trivial predictor's, as a share of that loss. At the end of
training the top stage's margin must reach `MIN_MARGIN` and `RATIO` times each shallow view's: its own first stage
(does the encoder develop with depth?) and the first stage's layers trained alone (is the depth worth having?).
Each bar is a part with the four outcomes of `screen.rules`, judged on the per-seed excess over the bar in points,
paired by seed (a seed's runs share their data order). One seed gives no interval: its parts are not measured, and
the means give a reading only. Depth pays when every part is met.
"""

from __future__ import annotations

import math

import numpy as np

from ..report.verdicts import paired
from .rules import NOT_MEASURED, combined, outcome_of

RATIO = 1.5  # the top stage's margin over a shallow view's
MIN_MARGIN = 0.10  # the top stage's margin, as a share of the best trivial predictor's loss
VIEWS = {"first_stage": "its own first stage", "shallow": "the shallow encoder trained alone"}


def loss_rule(tops: list[float], views: dict[str, list[float]]) -> dict:
    """`tops`: the top stage's final margin per seed; `views`: each shallow view's per seed, in the same order.
    Returns each part (its excess in points, interval and outcome), the rule's outcome, each view's outcome (the
    minimum margin and its own part) and what the means alone say per view."""
    parts = {"min_margin": outcome_of(paired([100 * (t - MIN_MARGIN) for t in tops], 0.0), 0.0)}
    parts.update({view: outcome_of(paired([100 * (t - RATIO * max(v, 0.0)) for t, v in zip(tops, values)], 0.0), 0.0)
                  for view, values in views.items()})
    top = float(np.mean(tops))
    return {"parts": parts, "outcome": combined([p["outcome"] for p in parts.values()]),
            "views": {view: combined([parts["min_margin"]["outcome"], parts[view]["outcome"]]) for view in views},
            "by_means": {view: top >= MIN_MARGIN and top >= RATIO * max(float(np.mean(values)), 0.0)
                         for view, values in views.items()}}


def loss_markdown(result: dict) -> list[str]:
    """The verdict and one line per part: the margins, ratios (per seed), excess intervals and outcomes."""
    rule, K = result["loss_rule"], result["K"]
    final = result["final_margin"]
    top = final["deep"][str(K)][0]
    margins = {"first_stage": final["deep"]["1"][0], "shallow": final["shallow"]["1"][0]}
    headline = f"**Depth pays: {rule['outcome']}.**"
    if rule["outcome"] == NOT_MEASURED:
        reading = "pays" if all(rule["by_means"].values()) else "does not pay"
        headline += f" One seed gives no interval; by the means, depth {reading} (a screen, not a claim)."
    else:
        parts = "; ".join(f"against {name}: {rule['views'][view]}" for view, name in VIEWS.items())
        headline += f" {parts[0].upper()}{parts[1:]}."
    lines = [f"{headline} The top stage's margin must reach {pct(MIN_MARGIN)} % of the best trivial predictor's "
             f"loss and {RATIO}x each shallow view's; each part is the per-seed excess over its bar, in points, with "
             "a 95 % interval (paired by seed): met when it clears zero, not met when it lies wholly below, "
             "inconclusive when it spans zero, not measured with one seed.", "",
             f"- the top stage's margin, {pct(top)} %, against {pct(MIN_MARGIN)} %: "
             f"{_part(rule['parts']['min_margin'], f'{pct(MIN_MARGIN)} %', top >= MIN_MARGIN)}"]
    for view, name in VIEWS.items():
        ratio = result["ratios"][view]
        versus = f"{ratio:.2f}x" if ratio is not None else "above a view that is not below the trivial predictor"
        seeds = result["seed_ratios"][view]
        if len(seeds) > 1:
            versus += " (per seed " + ", ".join("n/a" if r is None else f"{r:.2f}x" for r in seeds) + ")"
        passes = top >= RATIO * max(margins[view], 0.0)
        lines.append(f"- against {name} ({pct(margins[view])} %): {versus}; "
                     f"{_part(rule['parts'][view], f'{RATIO}x it', passes)}")
    return lines


def _part(part: dict, bar: str, passes_by_means: bool) -> str:
    if part["outcome"] == NOT_MEASURED:
        return f"not measured (by the means: {'passes' if passes_by_means else 'fails'})"
    return f"top minus {bar}: {part['mean']:+.1f} [{part['low']:+.1f}, {part['high']:+.1f}] points, {part['outcome']}"


def pct(v: float | None) -> str:
    """A share as a percentage with one decimal, n/a when missing."""
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"
