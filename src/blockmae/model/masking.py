"""Which tokens are hidden. A mask is bool (B, N), True = hidden, N = tokens of the clip.

Every clip hides exactly the same number of tokens, so visible and hidden tokens can be
gathered into dense (B, n, D) tensors without padding.
"""

from __future__ import annotations

import torch


def num_hidden(kind: str, ratio: float, grid: tuple[int, int, int]) -> int:
    t, h, w = grid
    if kind == "tube":
        return t * int(ratio * h * w)
    if kind == "random":
        return int(ratio * t * h * w)
    raise ValueError(f"mask kind '{kind}' must be 'tube' or 'random'")


def make_mask(kind: str, ratio: float, grid: tuple[int, int, int], batch: int,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Tube masking hides the same spatial positions in every temporal slice (VideoMAE);
    random masking hides tokens anywhere in space-time."""
    t, h, w = grid
    if kind == "tube":
        k = int(ratio * h * w)
        scores = torch.rand(batch, h * w, generator=generator)
        spatial = torch.zeros(batch, h * w, dtype=torch.bool)
        spatial.scatter_(1, scores.argsort(dim=1)[:, :k], True)
        return spatial.repeat(1, t)  # token order is (t, h, w): the same spatial mask per slice
    if kind == "random":
        k = int(ratio * t * h * w)
        scores = torch.rand(batch, t * h * w, generator=generator)
        mask = torch.zeros(batch, t * h * w, dtype=torch.bool)
        mask.scatter_(1, scores.argsort(dim=1)[:, :k], True)
        return mask
    raise ValueError(f"mask kind '{kind}' must be 'tube' or 'random'")


def split_indices(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (B, n_visible) and (B, n_hidden), each in token order.

    Raises if clips hide different numbers of tokens, which dense gathering cannot hold.
    """
    counts = mask.sum(dim=1)
    if mask.ndim != 2 or (counts != counts[0]).any():
        raise ValueError(f"mask must be bool (B, N) with the same number of hidden tokens per clip; "
                         f"got shape {tuple(mask.shape)} with counts {counts.tolist()}")
    n_hidden = int(counts[0])
    order = mask.to(torch.int8).argsort(dim=1, stable=True)  # visible (0) first, then hidden, each in order
    return order[:, : mask.shape[1] - n_hidden], order[:, mask.shape[1] - n_hidden:]


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, N, D) at idx (B, n) -> (B, n, D)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def subset_indices(batch: int, n: int, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Decoder masking: per clip, a random subset of positions 0..n-1 that leaves out `ratio` of them
    (at least one kept), in increasing order: (B, n - int(ratio * n))."""
    keep = max(1, n - int(ratio * n))
    scores = torch.rand(batch, n, generator=generator)
    return scores.argsort(dim=1)[:, :keep].sort(dim=1).values
