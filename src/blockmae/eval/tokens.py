"""Token-level diagnostics and the occlusion protocol.

- `token_similarity`: docs/paper.md / authors' `shared.cos_patch_similarity`: layer-normalise
  every token (no affine; eps 1e-12 as the authors), L2-normalise, mean cosine over the
  N(N-1) ordered pairs of distinct tokens of a clip, averaged over clips. Computed without
  the N x N matrix: sum_{i != j} e_i.e_j = ||sum_i e_i||^2 - sum_i ||e_i||^2.
- `relative_update_norm`: the authors publish no definition; ours is the mean over clips
  and tokens of ||after_t - before_t||_2 / ||before_t||_2 (denominator floored at 1e-12),
  i.e. how far a layer moves each token relative to its input size.
- Occlusion (authors' `evaluation/occlusion.py`, KeepOneRandomPatchOnly /
  KeepTwoRandomPatchesSplitMiddle): keep one random patch x patch square, at the same place
  in every frame, and fill the rest; positions are drawn on the patch grid (top-left
  corners at multiples of `patch`). With two regions: one square fully inside the left half
  [0, W//2) and one fully inside the right half [W//2, W), each on the grid.
  The authors fill with 0 in *model-input* space (their clips are already normalised: 0 is
  mid-grey for the gratings' [-1, 1] values and the mean colour for UCF101 after mean/std
  normalisation); on uint8 clips the default here is black (0), `fill` picks another value.
- `occlusion_drop` = (acc_full - acc_occluded) / acc_full. The authors compute it from the
  mean-over-targets accuracies of a probe *refitted* on occluded features (see probe.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def token_similarity(tokens: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean cosine over pairs of distinct layer-normalised tokens within a clip, averaged over clips.

    tokens: (B, N, D). nan when N < 2 (no pair).
    """
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be (B, N, D), got {tuple(tokens.shape)}")
    b, n, d = tokens.shape
    if n < 2:
        return float("nan")
    e = F.normalize(F.layer_norm(tokens.float(), (d,), eps=eps), dim=-1, eps=eps)
    total = e.sum(1).pow(2).sum(-1) - e.pow(2).sum((1, 2))  # sum over i != j of e_i . e_j, per clip
    return float((total / (n * (n - 1))).mean())


def relative_update_norm(before: torch.Tensor, after: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean over clips and tokens of ||after - before|| / ||before|| (token-wise L2 norms)."""
    if before.shape != after.shape:
        raise ValueError(f"before {tuple(before.shape)} and after {tuple(after.shape)} must match")
    before, after = before.float(), after.float()
    ratio = (after - before).norm(dim=-1) / before.norm(dim=-1).clamp_min(eps)
    return float(ratio.mean())


def _starts(low: int, high: int, patch: int, aligned: bool) -> torch.Tensor:
    """Top-left coordinates c with low <= c and c + patch <= high (multiples of patch when aligned)."""
    first = -(-low // patch) * patch if aligned else low
    last = high - patch
    return torch.arange(first, last + 1, patch if aligned else 1) if first <= last else torch.zeros(0, dtype=torch.long)


def occlusion_mask(batch: int, height: int, width: int, patch: int = 16, regions: int = 1,
                   generator: torch.Generator | None = None, aligned: bool = True) -> torch.Tensor:
    """Bool (B, H, W), True on the kept square(s): one per clip, or one per half with regions=2.

    The same mask applies to every frame of the clip (`occlude` broadcasts it over time).
    """
    if regions not in (1, 2):
        raise ValueError(f"regions must be 1 or 2, got {regions}")
    if patch < 1:
        raise ValueError(f"patch must be positive, got {patch}")
    if height < patch or width < patch:
        raise ValueError(f"image {height}x{width} is smaller than the {patch}x{patch} occlusion patch")
    mid = width // 2
    spans = [(0, width)] if regions == 1 else [(0, mid), (mid, width)]
    rows = _starts(0, height, patch, aligned)
    mask = torch.zeros(batch, height, width, dtype=torch.bool)
    for low, high in spans:
        cols = _starts(low, high, patch, aligned)
        if len(cols) == 0:
            side = "" if regions == 1 else (" left" if low == 0 else " right")
            raise ValueError(f"the{side} region [{low}, {high}) of width {width} cannot hold a {patch}-pixel "
                             f"patch{' on the patch grid' if aligned else ''}")
        y0 = rows[torch.randint(len(rows), (batch,), generator=generator)]
        x0 = cols[torch.randint(len(cols), (batch,), generator=generator)]
        ys = torch.arange(height)[None, :, None]
        xs = torch.arange(width)[None, None, :]
        mask |= ((ys >= y0[:, None, None]) & (ys < y0[:, None, None] + patch)
                 & (xs >= x0[:, None, None]) & (xs < x0[:, None, None] + patch))
    return mask


def occlude(clips, mask, fill: int | float = 0):
    """Clips (B, T, H, W, C) with every pixel outside `mask` (B, H, W) set to `fill` (black by default), all frames."""
    if clips.ndim != 5:
        raise ValueError(f"clips must be (B, T, H, W, C), got shape {tuple(clips.shape)}")
    b, _, h, w, _ = clips.shape
    if tuple(mask.shape) != (b, h, w):
        raise ValueError(f"mask must be (B, H, W) = {(b, h, w)}, got {tuple(mask.shape)}")
    if isinstance(clips, np.ndarray):
        keep = np.asarray(mask, dtype=bool)[:, None, :, :, None]
        return np.where(keep, clips, np.asarray(fill, dtype=clips.dtype))
    keep = torch.as_tensor(mask, dtype=torch.bool, device=clips.device)[:, None, :, :, None]
    return torch.where(keep, clips, torch.tensor(fill, dtype=clips.dtype, device=clips.device))


def occlusion_drop(acc_full: float, acc_occluded: float) -> float:
    """(acc_full - acc_occluded) / acc_full: the share of accuracy lost when only the kept patch(es) are seen."""
    return float((acc_full - acc_occluded) / acc_full) if acc_full else float("nan")
