"""Which clips a probe is fitted on and which it is scored on (docs/paper.md; the authors' evaluation code).

A dataset with a train and a test split: fit on train, score on test (`log_regr_multi_target`). A dataset
with a single set (the gratings): 3-fold StratifiedKFold cross-validation, shuffled with seed 0, every
target's folds stratified on the first target's labels (`log_regr_multi_target_cv`). When the clips come in groups
(several clips or views of one source video), the folds are grouped (StratifiedGroupKFold, same shuffle and seed), so
no group has clips on both sides of a fold; without groups the folds are exactly the authors'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

FOLDS = 3
FOLD_SEED = 0


@dataclass(frozen=True)
class SplitPlan:
    evaluate: str  # the split every metric is measured on
    fit: str | None  # the split probes (and kNN, gallery retrieval) are fitted on; None: cross-validation

    @property
    def row_split(self) -> str | None:
        """The `split` a metric row names: the scored split when there is a separate fit split, else None."""
        return self.evaluate if self.fit is not None else None


def split_plan(splits: Sequence[str] | None) -> SplitPlan:
    """Fit on train and score on test when the data has both; otherwise cross-validate on its one set
    (the first split it names, or train when it names none)."""
    if splits and {"train", "test"} <= set(splits):
        return SplitPlan(evaluate="test", fit="train")
    return SplitPlan(evaluate=splits[0] if splits else "train", fit=None)


def probe_folds(stratify_on, folds: int = FOLDS, seed: int = FOLD_SEED,
                groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, test indices) of each fold: StratifiedKFold(folds, shuffle=True, random_state=seed) on
    these labels (one per clip), or with `groups` (one per clip) StratifiedGroupKFold with the same shuffle and
    seed, which keeps every group on one side of each fold."""
    labels = np.asarray(stratify_on)
    # imported when used (training need not load sklearn)
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros((len(labels), 1)), labels))
    groups = np.asarray(groups)
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups for {len(labels)} clips")
    if len(np.unique(groups)) < folds:
        raise ValueError(f"{folds}-fold cross-validation over source videos needs at least {folds} groups (videos), "
                         f"got {len(np.unique(groups))}")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(labels), 1)), labels, groups))


def chance_accuracies(labels: np.ndarray, target_names: Sequence[str]) -> dict[str, float]:
    """{target: the share of the most frequent class, "mean": their mean}: what a probe that ignores the clip
    scores on these labels ((n, n_targets), the scored clips'; for cross-validated data, the whole set)."""
    labels = np.asarray(labels)
    shares = {name: float(np.unique(labels[:, t], return_counts=True)[1].max() / len(labels))
              for t, name in enumerate(target_names)}
    return shares | {"mean": float(np.mean(list(shares.values())))}
