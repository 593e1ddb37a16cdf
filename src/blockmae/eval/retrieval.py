"""Retrieval and kNN on pooled features (cosine similarity, torch matmul in query chunks).

- `loo_retrieval`: the paper's protocol (authors' `eva_embeddings._retrieval_metrics`):
  cosine similarity among the evaluation clips, the query itself excluded. R@k = share of
  queries with at least one same-class clip among the k most similar; every query counts.
  mAP = mean over queries of scikit-learn's `average_precision_score` on the ranked rest
  (tied scores form one step of the precision-recall curve, exactly as scikit-learn);
  queries with no other clip of their class are *skipped* (left out of the mean), as the
  authors do; nan when no query has one.
- `loo_retrieval_targets`: the same for every column of a label matrix; the similarity
  ranking (the expensive sort) is computed once and shared by all targets.
- `gallery_retrieval`: the common video-SSL protocol: test queries ranked against a train
  gallery by cosine, R@k as above.
- `knn_classify`: DINO's weighted kNN (Caron et al. 2021): L2-normalised features, the k
  most similar training clips vote with weight exp(cosine / T); largest summed vote wins.

Equal similarities inside a top-k cut: leave-one-out ranks them by clip index (stable
sort); gallery and kNN take `torch.topk`'s order. The authors' `np.argsort` is arbitrary
there too; continuous features practically never tie. Similarities are float64 by default
so that ties and AP match scikit-learn exactly.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from ..devices import resolve_device


def _unit(x, device, dtype) -> torch.Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero, like sklearn's cosine_similarity)."""
    x = torch.as_tensor(np.asarray(x), dtype=dtype, device=device)
    if x.ndim != 2:
        raise ValueError(f"features must be (n, d), got {tuple(x.shape)}")
    return torch.nn.functional.normalize(x, dim=1, eps=1e-12)


def _label_tensor(y, n: int, device) -> torch.Tensor:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must be (n,) with n={n}, got {y.shape}")
    return torch.as_tensor(y.astype(np.int64), device=device)


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _tie_group_ends(sorted_scores: torch.Tensor) -> torch.Tensor:
    """For each position of a row sorted in descending order, the last index of its run of equal scores."""
    m, length = sorted_scores.shape
    positions = torch.arange(length, device=sorted_scores.device).expand(m, length)
    is_end = torch.ones(m, length, dtype=torch.bool, device=sorted_scores.device)
    is_end[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    end = torch.where(is_end, positions, torch.full_like(positions, length))
    return end.flip(1).cummin(1).values.flip(1)


def _ap_sorted(rel: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """AP per row from relevance in ranked order and the tie-group ends; nan for rows without a relevant item."""
    rel = rel.to(torch.float64)
    precision_at_end = rel.cumsum(1).gather(1, ends) / (ends + 1).to(torch.float64)
    return (rel * precision_at_end).sum(1) / rel.sum(1)  # 0/0 -> nan


def average_precision(scores: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Row-wise average precision, equal to sklearn's `average_precision_score(relevant[i], scores[i])`.

    AP = sum over distinct score thresholds t (descending) of (R_t - R_prev) * P_t: all clips
    tied at a score enter together, so precision is read at the end of each tie group.
    Rows without a relevant item give nan.
    """
    scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
    return _ap_sorted(relevant.gather(1, order), _tie_group_ends(scores))


def _labels_matrix(y, n: int, device) -> torch.Tensor:
    y = np.asarray(y)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or len(y) != n:
        raise ValueError(f"labels must be (n,) or (n, n_targets) with n={n}, got {y.shape}")
    return torch.as_tensor(y.astype(np.int64), device=device)


def _loo(x, y, ks: Sequence[int], chunk_size: int, device, dtype, groups=None) -> list[dict[str, float]]:
    """Leave-one-out retrieval for every label column, ranking each query chunk once for all columns. With `groups`
    (one per clip) a query's whole group is left out, not just itself: other clips of its video are no hits."""
    dev = resolve_device(device, "device")
    z = _unit(x, dev, dtype)
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"leave-one-out retrieval needs at least 2 clips, got {n}")
    labels = _labels_matrix(y, n, dev)
    group = torch.as_tensor(np.asarray(groups), device=dev) if groups is not None else None
    if group is not None and len(group) != n:
        raise ValueError(f"{len(group)} groups for {n} clips")
    targets = labels.shape[1]
    ap_sum, ap_count = [0.0] * targets, [0] * targets
    hits = [{k: 0 for k in ks} for _ in range(targets)]
    for sl in _chunks(n, chunk_size):
        sims = z[sl] @ z.T
        rows = torch.arange(sims.shape[0], device=dev)
        sims[rows, torch.arange(sl.start, sl.stop, device=dev)] = -torch.inf
        if group is not None:
            sims[group[sl][:, None] == group[None, :]] = -torch.inf
        sims, order = torch.sort(sims, dim=1, descending=True, stable=True)
        sims, order = sims[:, :-1], order[:, :-1]  # the query itself: an -inf, ranked last or among the left out
        kept = sims > -torch.inf if group is not None else None  # the query's group, ranked last, is no hit
        ends = _tie_group_ends(sims)
        del sims
        for t in range(targets):
            rel = labels[order, t] == labels[sl, t][:, None]
            if kept is not None:
                rel &= kept
            for k in ks:
                hits[t][k] += int(rel[:, :k].any(1).sum())
            ap = _ap_sorted(rel, ends)
            valid = ~torch.isnan(ap)
            ap_sum[t] += float(ap[valid].sum())
            ap_count[t] += int(valid.sum())
    out = []
    for t in range(targets):
        res = {"map": ap_sum[t] / ap_count[t] if ap_count[t] else float("nan")}
        res.update({f"r@{k}": hits[t][k] / n for k in ks})
        out.append(res)
    return out


def loo_retrieval(x, y, ks: Sequence[int] = (1, 5, 10), *, chunk_size: int = 256, device=None,
                  dtype=torch.float64) -> dict[str, float]:
    """Leave-one-out cosine retrieval among the clips: {"map": mAP, "r@k": R@k for k in ks}.

    mAP skips queries without another clip of their class (the authors' choice); R@k counts
    every query (one without a same-class clip is a miss). Equal similarities rank by clip index.
    """
    if np.asarray(y).ndim != 1:
        raise ValueError("loo_retrieval takes one label per clip; use loo_retrieval_targets for a label matrix")
    return _loo(x, y, ks, chunk_size, device, dtype)[0]


def loo_retrieval_targets(x, y, target_names: Sequence[str] | None = None, ks: Sequence[int] = (1, 5, 10), *,
                          chunk_size: int = 256, device=None, dtype=torch.float64,
                          groups=None) -> dict[str, dict[str, float]]:
    """`loo_retrieval` for every column of y (n, n_targets), sorting the similarities once for all targets; with
    `groups` (one per clip) each query's whole group is left out (clips of one source video).

    Returns {target: {"map", "r@k"...}, ..., "mean": the nan-aware mean over targets of each
    number (the authors average the per-target numbers the same way)}.
    """
    results = _loo(x, y, ks, chunk_size, device, dtype, groups)
    names = list(target_names) if target_names is not None else [f"target_{j}" for j in range(len(results))]
    if len(names) != len(results):
        raise ValueError(f"{len(names)} target names for {len(results)} label columns")
    out = dict(zip(names, results))
    out["mean"] = {key: float(np.nanmean([r[key] for r in results])) if not all(np.isnan(r[key]) for r in results)
                   else float("nan") for key in results[0]}
    return out


def gallery_retrieval(query_x, query_y, gallery_x, gallery_y, ks: Sequence[int] = (1, 5, 10, 20, 50), *,
                      chunk_size: int = 1024, device=None, dtype=torch.float64) -> dict[str, float]:
    """Test queries against a train gallery by cosine: {"r@k": share of queries with a same-class clip in the top k}.

    Only k smaller than the gallery are reported: with k >= its size every query sees the whole gallery, a
    number that says nothing about the features."""
    ks = [k for k in ks if k < len(gallery_x)]
    if not ks:
        return {}
    dev = resolve_device(device, "device")
    q, g = _unit(query_x, dev, dtype), _unit(gallery_x, dev, dtype)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query width {q.shape[1]} != gallery width {g.shape[1]}")
    qy, gy = _label_tensor(query_y, len(q), dev), _label_tensor(gallery_y, len(g), dev)
    kmax = min(max(ks), len(g))
    hits = {k: 0 for k in ks}
    for sl in _chunks(len(q), chunk_size):
        top = (q[sl] @ g.T).topk(kmax, dim=1).indices
        top_rel = gy[top] == qy[sl, None]
        for k in ks:
            hits[k] += int(top_rel[:, :k].any(1).sum())
    return {f"r@{k}": hits[k] / len(q) for k in ks}


def knn_classify(train_x, train_y, test_x, test_y, k: int = 20, temperature: float = 0.07,
                 num_classes: int | None = None, *, chunk_size: int = 1024, device=None,
                 dtype=torch.float64) -> float:
    """Accuracy of DINO's weighted kNN: k nearest train clips by cosine vote with exp(sim / temperature).

    Labels are non-negative class indices; `num_classes` defaults to max label + 1. Equal
    votes go to the lowest class index (argmax).
    """
    dev = resolve_device(device, "device")
    tr, te = _unit(train_x, dev, dtype), _unit(test_x, dev, dtype)
    ytr, yte = _label_tensor(train_y, len(tr), dev), _label_tensor(test_y, len(te), dev)
    if (ytr < 0).any() or (yte < 0).any():
        raise ValueError("knn_classify expects non-negative integer class labels")
    n_cls = num_classes if num_classes is not None else int(max(ytr.max(), yte.max())) + 1
    k = min(k, len(tr))
    correct = 0
    for sl in _chunks(len(te), chunk_size):
        sims, idx = (te[sl] @ tr.T).topk(k, dim=1)
        votes = torch.zeros(sims.shape[0], n_cls, dtype=dtype, device=dev)
        votes.scatter_add_(1, ytr[idx], (sims / temperature).exp())
        correct += int((votes.argmax(1) == yte[sl]).sum())
    return correct / len(te)
