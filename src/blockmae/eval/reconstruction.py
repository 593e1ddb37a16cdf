"""Held-out masked-reconstruction loss per stage, beside the trivial predictors on the same clips and masks.

One function for training's summary and for the analysis, so both report the same number. The
masks are fixed (seeded per batch), so every run is scored on the same hidden tubelets.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

BASELINES = ("zero", "position_mean", "visible_mean", "oracle_constant")
# What a model must beat to have learned anything about a clip: a lookup table and a copy (the oracle peeks at
# the answer, and predicting 0 is weaker than both).
REFERENCE_BASELINES = ("position_mean", "visible_mean")
MASK_SEED = 10_007


@torch.no_grad()
def held_out_losses(model, videos: Callable[[], Iterable[torch.Tensor]], kind: str, ratio: float) -> dict:
    """Per-stage losses (`losses`) and the trivial predictors' losses (`baselines`), averaged over batches.

    `videos()` yields model-input batches (B, C, T, H, W) of one size and is called twice: once for
    each position's mean target over all the clips, once to score. `model` is a BlockMAE or anything with its
    `targets`, `make_mask` and `losses` (one loss per decoder it scores, e.g. a stitched model's top one).
    """
    position_sum, clips = None, 0
    for video in videos():
        t = model.targets(video).double().sum(0)
        position_sum = t if position_sum is None else position_sum + t
        clips += video.shape[0]
    if position_sum is None:
        raise ValueError("held-out loss: no clips to score")
    position_mean = (position_sum / clips).float()
    totals = None
    trivial = dict.fromkeys(BASELINES, 0.0)
    was_training = model.training
    model.eval()
    batches = 0
    for i, video in enumerate(videos()):
        mask = model.make_mask(video.shape[0], torch.Generator().manual_seed(MASK_SEED + i), kind, ratio)
        losses = torch.tensor([loss.item() for loss in model.losses(video, mask)], dtype=torch.float64)
        totals = losses if totals is None else totals + losses
        for key, value in trivial_losses(model.targets(video), mask.to(video.device), position_mean).items():
            trivial[key] += value
        batches += 1
    model.train(was_training)
    return {"clips": clips, "losses": (totals / batches).tolist(),
            "baselines": {key: value / batches for key, value in trivial.items()}}


@torch.no_grad()
def trivial_losses(targets: torch.Tensor, mask: torch.Tensor, position_mean: torch.Tensor) -> dict[str, float]:
    """The losses of predictors that learn nothing about a clip's layout, on its hidden tubelets.

    `zero` predicts 0 for every target (with normalised-pixel targets: each tubelet's own mean);
    `position_mean` predicts each token position's mean target over the evaluation clips
    (`position_mean`, (N, D)); `visible_mean` predicts every hidden tubelet as the mean target of the
    clip's visible ones (with raw-pixel targets: the clip's average colour). A model not below them
    has learned nothing a lookup table or a copy could not. `oracle_constant` predicts every hidden
    tubelet as the mean of the clip's hidden ones: the best single tubelet per clip in MSE, an oracle
    (it peeks at the answer) that says how much of the loss any constant-per-clip guess leaves.
    targets: (B, N, D) for every token; mask: (B, N) bool, True = hidden.
    """
    hidden = targets[mask]

    def clip_mean_over(which: torch.Tensor) -> torch.Tensor:  # (B, D): each clip's mean target over `which`
        return (targets * which.unsqueeze(-1)).sum(1) / which.sum(1, keepdim=True).clamp(min=1)

    def loss_of(per_clip: torch.Tensor) -> float:  # every hidden tubelet predicted as its clip's (D,) constant
        return float((hidden - per_clip.unsqueeze(1).expand_as(targets)[mask]).square().mean())

    return {"zero": float(hidden.square().mean()),
            "position_mean": float((hidden - position_mean.expand_as(targets)[mask]).square().mean()),
            "visible_mean": loss_of(clip_mean_over(~mask)),
            "oracle_constant": loss_of(clip_mean_over(mask))}


def best_reference(baselines: dict[str, float]) -> tuple[str, float] | None:
    """(key, loss) of the lower of the position-mean and visible-mean losses; None when neither was scored."""
    scored = [(key, baselines[key]) for key in REFERENCE_BASELINES
              if baselines.get(key) is not None and math.isfinite(baselines[key])]
    return min(scored, key=lambda kv: kv[1]) if scored else None


def margin_below(loss: float, reference: float) -> float:
    """How far `loss` lies below `reference`, in % of `reference` (negative: above it)."""
    return 100.0 * (reference - loss) / reference if reference else math.nan
