"""Linear probes on pooled features, as the authors ran them.

Protocol (docs/paper.md; authors' `evaluation/shared.py`, `log_regr_multi_target[_cv]`):
standardise the features (StandardScaler fitted on the training part only), then a
multinomial logistic regression (scikit-learn defaults: L2, C=1.0, L-BFGS) with
`max_iter=1000`; top-1 accuracy as a fraction in [0, 1]. One probe per target: the
authors' MultiOutputClassifier fits one independent LogisticRegression per column, which
is what `probe_targets` does. Which clips fit and which score a probe (train -> test, or
the cross-validation folds of single-set data) is `eval.protocols`.

Occlusion: the authors *refit* the probe on occluded features (their runs 005/006 extract
features from occluded clips and run the same probe on them: CV for gratings, occluded
train -> occluded test for UCF101). `score_x` offers the other reading (probe fitted on
full-clip features, scored on occluded ones of the same clips); pass occluded features as
`x` to reproduce the authors.

`torch_linear_probe` fits many feature sets (e.g. every layer) in one batched full-batch
L-BFGS on the same objective as scikit-learn and agrees with `linear_probe` to well
within 0.5 percentage points (tested).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..devices import resolve_device
from .protocols import FOLD_SEED, FOLDS, probe_folds


def _probe_pipeline(max_iter: int):
    # scikit-learn is imported here, not at the top: training imports this package and should not pay ~1 s for it.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))


def _labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"expected one label per clip, shape (n,), got {y.shape}")
    return y.astype(np.int64)


def linear_probe(train_x, train_y, test_x, test_y, max_iter: int = 1000) -> float:
    """Top-1 accuracy of StandardScaler + multinomial LogisticRegression (L-BFGS) fit on train, scored on test."""
    clf = _probe_pipeline(max_iter).fit(np.asarray(train_x), _labels(train_y))
    return float(clf.score(np.asarray(test_x), _labels(test_y)))


def cv_probe(x, y, folds: int = FOLDS, seed: int = FOLD_SEED, stratify_on=None, max_iter: int = 1000,
             score_x=None, groups=None) -> float:
    """Mean top-1 accuracy over the `protocols.probe_folds` (StratifiedKFold, shuffled, `seed`).

    Folds are stratified on `stratify_on` (default: `y`; the authors stratify every target on
    the first target's labels) and, with `groups` (one per clip), grouped so that no group is on both sides of
    a fold. The scaler is fitted inside each training fold. With `score_x`
    (same clips as `x`, e.g. occluded), the probe fitted on `x` is scored on `score_x`.
    """
    x, y = np.asarray(x), _labels(y)
    strat = y if stratify_on is None else np.asarray(stratify_on)
    if len(strat) != len(y) or len(x) != len(y):
        raise ValueError(f"x ({len(x)}), y ({len(y)}) and stratify_on ({len(strat)}) must have one row per clip")
    score = x if score_x is None else np.asarray(score_x)
    if score.shape != x.shape:
        raise ValueError(f"score_x must have the shape of x {x.shape}, got {score.shape}")
    accs = []
    for train_idx, test_idx in probe_folds(strat, folds, seed, groups):
        clf = _probe_pipeline(max_iter).fit(x[train_idx], y[train_idx])
        accs.append(clf.score(score[test_idx], y[test_idx]))
    return float(np.mean(accs))


def probe_targets(x, y, target_names: Sequence[str] | None = None, test_x=None, test_y=None, *, folds: int = FOLDS,
                  seed: int = FOLD_SEED, max_iter: int = 1000, score_x=None, groups=None) -> dict[str, float]:
    """One probe per label column: {target: accuracy, ..., "mean": mean of the per-target accuracies}.

    `y` is (n, n_targets) (or (n,) for one target). With `test_x`/`test_y`, fit on (x, y) and
    score on the test set (`score_x` replaces `test_x` for scoring); otherwise `folds`-fold CV
    stratified on the first target, as the authors did for the gratings (grouped by `groups` when given).
    """
    y = np.asarray(y)
    y = y[:, None] if y.ndim == 1 else y
    names = list(target_names) if target_names is not None else [f"target_{j}" for j in range(y.shape[1])]
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} target names for {y.shape[1]} label columns")
    out: dict[str, float] = {}
    if test_x is not None:
        if test_y is None:
            raise ValueError("test_x given without test_y")
        ty = np.asarray(test_y)
        ty = ty[:, None] if ty.ndim == 1 else ty
        scored = test_x if score_x is None else score_x
        for j, name in enumerate(names):
            out[name] = linear_probe(x, y[:, j], scored, ty[:, j], max_iter=max_iter)
    else:
        for j, name in enumerate(names):
            out[name] = cv_probe(x, y[:, j], folds=folds, seed=seed, stratify_on=y[:, 0], max_iter=max_iter,
                                 score_x=score_x, groups=groups)
    out["mean"] = float(np.mean([out[n] for n in names]))
    return out


def probe_unit(test, train, unit: Callable[[object], np.ndarray]) -> dict[str, float]:
    """`probe_targets` on one unit (`unit(features)`: a block's or layer's pooled features) of a split plan's
    `eval.features.Features`: fitted on `train` and scored on `test`, or, with `train` None, cross-validated on
    `test` with its clips' source videos kept on one side of each fold (`test.groups`)."""
    if train is None:
        return probe_targets(unit(test), test.labels, test.target_names, groups=test.groups)
    return probe_targets(unit(train), train.labels, test.target_names, test_x=unit(test), test_y=test.labels)


def _standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """StandardScaler: train mean and population std (ddof=0); constant features keep scale 1."""
    mean = train.mean(0)
    std = train.std(0, unbiased=False)
    std = torch.where(std < 10 * torch.finfo(std.dtype).eps, torch.ones_like(std), std)
    return [(t - mean) / std for t in (train, *others)]


def torch_linear_probe(train_feats: Mapping[str, object], train_y, test_feats: Mapping[str, object], test_y, *,
                       C: float = 1.0, max_iter: int = 1000, tol: float = 1e-7, device=None, dtype=None,
                       sets_per_batch: int | None = None) -> dict[str, float]:
    """Top-1 test accuracy of one standardised logistic-regression probe per feature set, fitted together.

    Same model and objective as `linear_probe`: mean cross-entropy + ||W||^2 / (2 C n_train)
    (scikit-learn minimises C * sum(loss) + ||W||^2 / 2, the same optimum), intercept not
    penalised; softmax over all classes, except for two classes where, like scikit-learn, a
    single logistic (sigmoid) weight vector is fitted. Feature sets of different widths are
    zero-padded (padded weights stay exactly 0). Full-batch L-BFGS (strong Wolfe) on the sum
    of the per-set objectives, which are independent, so each set reaches its own optimum.
    Runs on the GPU when one is present (float64 unless `dtype` says otherwise).
    """
    keys = list(train_feats)
    if set(keys) != set(test_feats):
        raise ValueError(f"train and test feature sets differ: {sorted(set(keys) ^ set(test_feats))}")
    device = resolve_device(device)
    dtype = dtype or torch.float64
    ytr, yte = _labels(train_y), _labels(test_y)
    classes = np.unique(ytr)
    if len(classes) < 2:
        raise ValueError(f"need at least two classes in train_y, got {classes.tolist()}")
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    ytr_idx = torch.as_tensor(np.searchsorted(classes, ytr), device=device)
    yte_idx = torch.as_tensor([lookup.get(c, -1) for c in yte.tolist()], device=device)  # unseen class: never right
    n, n_cls = len(ytr), len(classes)
    outputs = 1 if n_cls == 2 else n_cls
    step = sets_per_batch or len(keys)
    result: dict[str, float] = {}
    for start in range(0, len(keys), step):
        group = keys[start:start + step]
        pairs = [_standardise(torch.as_tensor(np.asarray(train_feats[k]), dtype=dtype, device=device),
                              torch.as_tensor(np.asarray(test_feats[k]), dtype=dtype, device=device)) for k in group]
        width = max(tr.shape[1] for tr, _ in pairs)
        xtr = torch.stack([torch.nn.functional.pad(tr, (0, width - tr.shape[1])) for tr, _ in pairs])  # (F, n, d)
        xte = torch.stack([torch.nn.functional.pad(te, (0, width - te.shape[1])) for _, te in pairs])
        w = torch.zeros(len(group), width, outputs, dtype=dtype, device=device, requires_grad=True)
        b = torch.zeros(len(group), 1, outputs, dtype=dtype, device=device, requires_grad=True)
        target = ytr_idx.expand(len(group), n)
        opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20, tolerance_grad=tol,
                                tolerance_change=1e-15, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = torch.baddbmm(b, xtr, w)
            if outputs == 1:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits.squeeze(-1), target.to(dtype), reduction="none").mean(1)
            else:
                loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)
            total = (loss + w.pow(2).sum((1, 2)) / (2 * C * n)).sum()
            total.backward()
            return total

        opt.step(closure)
        with torch.no_grad():
            logits = torch.baddbmm(b, xte, w)
            pred = (logits.squeeze(-1) > 0).long() if outputs == 1 else logits.argmax(-1)
            accs = (pred == yte_idx).double().mean(1)
        result.update({k: float(a) for k, a in zip(group, accs.tolist())})
    return result
