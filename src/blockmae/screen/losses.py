"""The screen's loss rule on its page: the rule itself (`report.depth_rule.loss_rule`) asks whether the deep
encoder's top stage lies far enough below the best trivial predictor, and further than a shallow view does: its own
first stage (does the encoder develop with depth?) and the first stage's layers trained alone (is the depth worth
having?).
"""

from __future__ import annotations

import math

from ..report.depth_rule import MIN_MARGIN, NOT_MEASURED, RATIO, excess_text

VIEWS = {"first_stage": "its own first stage", "shallow": "the shallow encoder trained alone"}


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
    return f"top minus {bar}: {excess_text(part)} points, {part['outcome']}"


def pct(v: float | None) -> str:
    """A share as a percentage with one decimal, n/a when missing."""
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"
