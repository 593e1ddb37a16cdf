"""Surviving broken samples: skip, replace, count and report (or, with strict=True, stop at once).

    dataset = SkipCorrupt(build_dataset(spec, "train", ...), strict=cfg.data.strict)
    clip, labels, skipped = dataset[i]        # skipped: ["PATH: reason (detail)", ...]
    loader = DataLoader(dataset, ..., collate_fn=collate)
    clips, labels, skipped = next(iter(loader))

A sample that raises `VideoDecodeError` (missing, empty, truncated, undecodable, too short) is
replaced by another index drawn from `default_rng([seed, index, attempt])`, so the
replacement is the same in every worker and on resume. Any other exception is a bug and
propagates. `collate` stacks items of 2 or 3 fields and flattens repeated clips
(B, R, T, H, W, C) -> (B*R, T, H, W, C), repeating each sample's labels R times.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .video import VideoDecodeError

MAX_ATTEMPTS = 20


class TooManyCorrupt(RuntimeError):
    """Every replacement tried for one sample failed too: the collection (or its root) is likely wrong."""


class SkipCorrupt(Dataset):
    """Wrap a dataset so unreadable samples are skipped: items become (clip, labels, skipped)."""

    def __init__(self, dataset, strict: bool = False, seed: int = 0, max_attempts: int = MAX_ATTEMPTS,
                 replace: bool = True):
        """`replace=False` is for evaluation: an unreadable sample comes back as (None, None, [why]) and `collate`
        leaves it out, so every readable clip is used exactly once and nothing is substituted."""
        self.dataset, self.strict, self.seed, self.max_attempts = dataset, strict, seed, max_attempts
        self.replace = replace

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):  # target_names, class_names, set_epoch, all_labels... of the wrapped set
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def replacement(self, index: int, attempt: int) -> int:
        """The index tried after `attempt` failures starting from `index` (attempt >= 1)."""
        return int(np.random.default_rng([self.seed, index, attempt]).integers(len(self.dataset)))

    def __getitem__(self, index):
        """(clip, labels, skipped) for `index` (an int, or an (index, epoch) pair passed on to the dataset)."""
        skipped: list[str] = []
        index, epoch = index if isinstance(index, tuple) else (index, None)
        current = index
        for attempt in range(1, self.max_attempts + 1):
            try:
                clip, labels = self.dataset[current if epoch is None else (current, epoch)]
                return clip, labels, skipped
            except VideoDecodeError as e:
                if self.strict:
                    raise
                skipped.append(str(e))
                if not self.replace:
                    return None, None, skipped
                current = self.replacement(index, attempt)
        raise TooManyCorrupt(f"{len(skipped)} samples in a row failed to load, starting at index {index}:\n  "
                             + "\n  ".join(skipped[:5]) + "\ncheck the data with `blockmae datasets check SPEC`")


def collate(items):
    """Stack (clip, labels[, skipped]) items; repeated clips (R, T, H, W, C) are flattened into the batch.

    Returns (clips uint8 (N, T, H, W, C), labels int64 (N, n_targets)) for 2-field items and
    (clips, labels, skipped list of str) for 3-field items; items whose clip is None (left out in evaluation)
    only add to `skipped`, and a batch of nothing but those gives (None, None, skipped).
    """
    left_out = [s for item in items if item[0] is None for s in item[2]]
    items = [item for item in items if item[0] is not None]  # evaluation: unreadable clips are left out
    if not items:
        return None, None, left_out
    fields = list(zip(*items))
    clips, labels = fields[0], fields[1]
    if clips[0].ndim == 5:
        repeats = clips[0].shape[0]
        out = torch.cat(clips)
        labels = torch.stack(labels).repeat_interleave(repeats, dim=0)
    else:
        out, labels = torch.stack(clips), torch.stack(labels)
    if len(fields) == 2:
        return out, labels
    return out, labels, left_out + [s for skipped in fields[2] for s in skipped]
