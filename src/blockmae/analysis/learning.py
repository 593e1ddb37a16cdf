"""Did training learn? The trained groups against what learning nothing scores: the trivial predictors'
held-out losses (on the same clips and masks) and the random-init encoder's probe."""

from __future__ import annotations

import math

from .rows import datasets_of, final_block_values, final_rows, mean_and_half_width, run_values

# The trivial predictors `eval.reconstruction.held_out_losses` scores (rows `recon_loss_<key>`) -> table heading.
BASELINES = {"zero": "predict 0", "position_mean": "position mean", "visible_mean": "visible mean"}


def learning_verdicts(rows: list[dict]) -> list[str]:
    """Plain sentences: per dataset, whether the trained groups beat the trivial predictors and the random floor.

    A group beats a baseline when its mean final-block loss (or probe) is better; the sentence says so when
    no trained group does, so a report never lets noise pass for learning.
    """
    rows, out = final_rows(rows), []
    for dataset in datasets_of(rows):
        losses = {g: mean_and_half_width(v)[0] for g, v in final_block_values(rows, "recon_loss", dataset).items()
                  if g.regime != "random"}
        lookup = {g: mean_and_half_width(v)[0]
                  for g, v in run_values(rows, "recon_loss_position_mean", dataset).items()}
        if losses and lookup:
            beaten = [g for g, v in losses.items() if g in lookup and v < lookup[g]]
            if not beaten:
                out.append(f"{dataset}: no trained run reconstructs better than predicting each position's mean "
                           "target: the held-out losses show no learning.")
            elif len(beaten) < len(losses):
                worse = ", ".join(f"{g.regime} K={g.K}" for g in losses if g not in beaten)
                out.append(f"{dataset}: {worse} reconstruct no better than predicting each position's mean target.")
        probes = {g: mean_and_half_width(v) for g, v in final_block_values(rows, "probe_acc", dataset).items()}
        floor = [mean for g, (mean, _) in probes.items() if g.regime == "random"]
        trained = {g: s for g, s in probes.items() if g.regime != "random"}
        if floor and trained:
            # beyond its interval: the lower end must clear the floor (a single run has no interval: its mean)
            above = [g for g, (mean, half) in trained.items()
                     if mean - (half if math.isfinite(half) else 0.0) > floor[0]]
            if not above:
                out.append(f"{dataset}: no trained run's final-block probe beats the random-init encoder "
                           f"({100 * floor[0]:.1f}%) beyond its interval.")
    return out
