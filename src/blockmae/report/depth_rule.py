"""Does depth pay? The loss rule, and the four outcomes it shares with the screen's probe rule (`screen.probes`).

The rule is asked by `blockmae screen` (its deep and shallow runs) and by every study's report (each trained group
with two stages or more, against its own first stage).

A part of a rule is a difference over seeds (its 95% t-interval) against a bar: met when the mean reaches the bar
and the interval clears zero; not met when the whole interval lies below the bar; inconclusive when the bar lies
inside the interval or the interval reaches zero; not measured when there is no interval (one seed, or one
random-init encoder for a difference between groups). A rule is met when every part is.
"""

from __future__ import annotations

import math

import numpy as np

from ..analysis.rows import datasets_of, group_of, group_sort_key, mean_and_half_width, trivial_losses_of
from ..config import ConfigError
from ..regimes import regime_plan
from .learning import BASELINES
from .verdicts import Difference, paired

MET, NOT_MET, INCONCLUSIVE, NOT_MEASURED = "met", "not met", "inconclusive", "not measured"
RATIO = 1.5  # the top stage's margin over a shallow view's
MIN_MARGIN = 0.10  # the top stage's margin, as a share of the best trivial predictor's loss


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


def loss_rule(tops: list[float], views: dict[str, list[float]]) -> dict:
    """Margins (how far a held-out loss lies below the best trivial predictor's, as a share of it) at the end of
    training. `tops`: the top stage's per seed; `views`: each shallow view's per seed, in the same order. The top
    must reach `MIN_MARGIN` and `RATIO` times each view's; each bar is a part judged on the per-seed excess over it
    in points, paired by seed (one seed: not measured). Returns each part (its excess, interval and outcome), the
    rule's outcome, each view's outcome (the minimum margin and its own part) and what the means alone say."""
    parts = {"min_margin": outcome_of(paired([100 * (t - MIN_MARGIN) for t in tops], 0.0), 0.0)}
    parts.update({view: outcome_of(paired([100 * (t - RATIO * max(v, 0.0)) for t, v in zip(tops, values)], 0.0), 0.0)
                  for view, values in views.items()})
    top = float(np.mean(tops))
    return {"parts": parts, "outcome": combined([p["outcome"] for p in parts.values()]),
            "views": {view: combined([parts["min_margin"]["outcome"], parts[view]["outcome"]]) for view in views},
            "by_means": {view: top >= MIN_MARGIN and top >= RATIO * max(float(np.mean(values)), 0.0)
                         for view, values in views.items()}}


def study_depth_rule(rows: list[dict], dataset: str) -> dict:
    """Per trained group with two stages or more: each run's first and top stage margins on `dataset` (final
    models' `recon_loss` rows, against the lowest of the trivial predictors on the same clips and masks: the
    run's own rows, and the dataset's where a run lacks one) and the loss rule against its own first stage. Regimes
    whose upper stages predict pooled targets are left out."""
    losses, trivial = {}, {}
    for r in rows:
        if r.get("dataset") != dataset or r.get("step") is not None or r.get("regime") == "random":
            continue
        if r.get("metric") == "recon_loss" and r.get("block") is not None and r.get("layer") is None:
            losses.setdefault(r["run"], {})[r["block"]] = (group_of(r), r["value"])
        elif str(r.get("metric", "")).removeprefix("recon_loss_") in BASELINES and r.get("block") is None:
            trivial.setdefault(r["run"], {})[r["metric"].removeprefix("recon_loss_")] = r["value"]
    shared = trivial_losses_of(rows, dataset)  # a predictor a run's rows lack (older studies: the oracle)
    groups = {}
    for run, blocks in losses.items():
        known = {**shared, **trivial.get(run, {})}
        if len(blocks) < 2 or not known or _pools_targets(blocks[min(blocks)][0]):
            continue
        best = min(known.values())
        group = blocks[min(blocks)][0]
        first, top = ((best - blocks[b][1]) / best for b in (min(blocks), max(blocks)))
        groups.setdefault(group, {"runs": [], "first": [], "top": []})
        for key, value in (("runs", run), ("first", first), ("top", top)):
            groups[group][key].append(value)
    return {g: {**d, "rule": loss_rule(d["top"], {"first_stage": d["first"]})} for g, d in groups.items()}


def _pools_targets(group) -> bool:
    """Whether some stage of the group's regime predicts pooled targets (coarse-targets): its loss is then on other
    targets than the trivial predictors', so the rule does not apply."""
    try:
        return any(stage.pool > 1 for stage in regime_plan(group.regime, int(group.K)).stages)
    except ConfigError:  # a regime the table does not know (an older study's)
        return False


def depth_rule_markdown(rows: list[dict]) -> str:
    """The rule per dataset and trained group as a markdown section (findings.md); empty without per-stage losses."""
    lines = []
    for dataset in datasets_of(rows):
        judged = study_depth_rule(rows, dataset)
        for g in sorted(judged, key=group_sort_key):
            d, rule = judged[g], judged[g]["rule"]
            (first, first_half), (top, top_half) = (mean_and_half_width(d[k]) for k in ("first", "top"))
            ratio = f"{top / first:.2f}x" if first > 0 else "-"
            excess = [excess_text(rule["parts"][k]) for k in ("first_stage", "min_margin")]
            lines.append(f"| {dataset} | {g.regime} K={g.K} | {len(d['runs'])} | "
                         f"{100 * first:.1f} ± {100 * first_half:.1f} | {100 * top:.1f} ± {100 * top_half:.1f} | "
                         f"{ratio} | {excess[0]} | {excess[1]} | {rule['outcome']} |")
    if not lines:
        return ""
    return "\n".join([
        "## Does depth pay? (held-out loss, top stage against its own first)", "",
        f"| dataset | group | runs | first stage, % below the best trivial predictor | top stage | top / first | "
        f"top minus {RATIO}x first (points) | top minus {100 * MIN_MARGIN:.0f} % (points) | depth pays |",
        "|---|---|---|---|---|---|---|---|---|", *lines, "",
        "A margin is how far a stage's held-out loss lies below the best of the trivial predictors on the run's "
        "clips and masks, in % of it (E2E: through its monitors; regimes whose upper stages predict pooled targets "
        "are left out, their losses being on other targets). Depth pays when the top stage's margin reaches "
        f"{100 * MIN_MARGIN:.0f} % and {RATIO}x its first stage's, each per-seed excess with a 95 % t-interval "
        "clear of zero (met; not met: wholly below; inconclusive: spanning zero; not measured: one seed).", ""])


def excess_text(part: dict) -> str:
    """An excess in points with its interval, or '(no interval)' for one seed."""
    if part["n"] < 2:
        return f"{part['mean']:+.1f} (no interval)"
    return f"{part['mean']:+.1f} [{part['low']:+.1f}, {part['high']:+.1f}]"
