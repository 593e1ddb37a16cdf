"""Did training learn? The trained groups against what learning nothing scores: the trivial predictors'
held-out losses (on the same clips and masks) and the random-init encoders' probe."""

from __future__ import annotations

import math

from ..analysis.rows import (Group, datasets_of, difference_and_half_width, final_block_values, final_rows,
                             mean_and_half_width, run_values)

# The trivial predictors `eval.reconstruction.held_out_losses` scores (rows `recon_loss_<key>`) -> table heading.
BASELINES = {"zero": "predict 0", "position_mean": "position mean (lookup)", "visible_mean": "visible mean (copy)",
             "oracle_constant": "per-clip oracle"}


def learning_verdicts(rows: list[dict]) -> list[str]:
    """Plain sentences: per dataset, whether the trained groups beat the trivial predictors and the random floor.

    A group beats a trivial predictor when its mean final-block loss is lower; it beats the random floor when the
    95% interval of the difference between its probe and the floor group's (Welch, over both groups' seeds) lies
    above 0. The sentence says so when no trained group does, so a report never lets noise pass for learning.
    """
    rows, out = final_rows(rows), []
    for dataset in datasets_of(rows):
        losses = {g: mean_and_half_width(v)[0] for g, v in final_block_values(rows, "recon_loss", dataset).items()
                  if g.regime != "random"}
        out += _loss_verdicts(dataset, losses, _baseline_means(rows, "position_mean", dataset),
                              _baseline_means(rows, "visible_mean", dataset))
        out += _floor_verdict(dataset, final_block_values(rows, "probe_acc", dataset))
    return out


def _baseline_means(rows: list[dict], key: str, dataset: str) -> dict[Group, float]:
    return {g: mean_and_half_width(v)[0] for g, v in run_values(rows, f"recon_loss_{key}", dataset).items()}


def _loss_verdicts(dataset: str, losses: dict[Group, float], lookup: dict[Group, float],
                   copy: dict[Group, float]) -> list[str]:
    if not losses or not lookup:
        return []
    beaten = [g for g, v in losses.items() if g in lookup and v < lookup[g]]
    if not beaten:
        return [f"{dataset}: no trained run reconstructs better than predicting each position's mean target: the "
                "held-out losses show no learning."]
    out = []
    if len(beaten) < len(losses):
        worse = ", ".join(f"{g.regime} K={g.K}" for g in losses if g not in beaten)
        out.append(f"{dataset}: {worse} reconstruct no better than predicting each position's mean target.")
    copied = [g for g in beaten if g in copy and not losses[g] < copy[g]]
    if copied:
        out.append(f"{dataset}: {', '.join(f'{g.regime} K={g.K}' for g in copied)} reconstruct no better than "
                   "copying the clip's visible mean into every hidden tubelet.")
    return out


def _floor_verdict(dataset: str, probes: dict[Group, list[float]]) -> list[str]:
    floor = [v for g, values in probes.items() if g.regime == "random" for v in values]
    trained = {g: v for g, v in probes.items() if g.regime != "random"}
    if not floor or not trained:
        return []
    above = []
    for g, values in trained.items():
        gain, half = difference_and_half_width(values, floor)
        if gain - (half if math.isfinite(half) else 0.0) > 0:
            above.append(g)
    if above:
        return []
    mean, half = mean_and_half_width(floor)
    spread = f" ± {100 * half:.1f}" if math.isfinite(half) else ""
    return [f"{dataset}: no trained run's final-block probe beats the random-init encoder ({100 * mean:.1f}%{spread}, "
            f"{len(floor)} seed{'s' if len(floor) != 1 else ''}) beyond the interval of the difference."]
