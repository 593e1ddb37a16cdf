"""Model input in fixed batches from an evaluation dataset: the one walk over clips that training's held-out
summary, the analysis's reconstruction loss and the stitching experiments share, so they score the same batches."""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from .robust import collate
from .transforms import to_model_input


def model_batches(dataset, indices: Sequence[int], batch: int, device: torch.device | str, mean, std,
                  tick: Callable[[int], object] = lambda n: None) -> Iterator[torch.Tensor]:
    """Model input (B, C, T, H, W) of the clips at `indices`, `batch` at a time, full batches only (a remainder is
    dropped). An unreadable clip (`SkipCorrupt(replace=False)`) is left out, never replaced: evaluation scores each
    readable clip once, so its batch is smaller, and a batch of nothing but such clips is skipped. `tick(batch)`
    after every batch (a progress bar)."""
    for start in range(0, len(indices) - batch + 1, batch):
        clips, _, _ = collate([dataset[j] for j in indices[start:start + batch]])
        if clips is not None:
            yield to_model_input(clips.to(device), mean, std)
        tick(batch)
