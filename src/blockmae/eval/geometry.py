"""Geometry of a set of pooled features X (n, d), following the authors' definitions
(`evaluation/ml_tracker/utilities/eva_embeddings.py`: `_distribution_scale_metrics`,
`_geometry_spectrum_metrics`, `_uniformity_metric`).

- Norms: mean and population std (ddof=0) of ||x_i||.
- Pairwise statistics on sampled ordered pairs i != j (the authors sample 20,000 pairs
  uniformly with replacement, shifting j by one where j == i). We do the same when there
  are more ordered pairs than `max_pairs`, and use *all* ordered pairs otherwise (exact,
  deterministic). Cosine is taken on unit-normalised rows, distance is Euclidean on raw rows.
- Spectrum: eigenvalues of the sample covariance of the centred features,
  lambda = s^2 / (n - 1) from the singular values s of X - mean (min(n, d) values, as the
  authors). effective rank = exp(-sum p log p), p = lambda / sum lambda (Roy & Vetterli
  2007); participation ratio = (sum lambda)^2 / sum lambda^2; isotropy ratio =
  lambda_max / mean(lambda); explained-variance k@90% = the smallest k whose top-k
  eigenvalues reach 90% of the total; condition number = lambda_max / max(lambda_min, eps)
  (large, ~1/eps, when n <= d, since centring leaves at most n-1 non-zero eigenvalues).
- Uniformity (Wang & Isola 2020): log E_{i != j} exp(-t ||z_i - z_j||^2), t = 2, on
  L2-normalised rows, over the same pairs, as a stable log-mean-exp.
- Intrinsic dimension, TwoNN (Facco et al. 2017): for every point, r1 and r2 = the Euclidean distances to its
  first and second nearest neighbours, mu = r2 / r1; on a manifold of dimension d (locally uniform density)
  mu is Pareto distributed, P(mu > m) = m^-d, so log mu ~ Exponential(d). We use the maximum-likelihood route,
  d = (N - 1) / sum_i log mu_i (the unbiased form), rather than the paper's least-squares fit of
  -log(1 - F(mu)) on log mu with the top 10% of mu discarded: it needs no discard fraction. Points with
  r1 = 0 (duplicate clips) are left out, as Facco et al. advise; nan when fewer than 3 points remain.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12
ROW_BLOCK = 1024  # rows of the distance matrix held at once (TwoNN)


def _features(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {x.shape}")
    return x


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


def sample_pairs(n: int, max_pairs: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs (i, j), i != j: all n(n-1) of them if that is <= max_pairs, else max_pairs sampled
    uniformly with replacement (j shifted by one where it equals i, as the authors)."""
    if n < 2:
        raise ValueError(f"need at least 2 clips for pairwise statistics, got {n}")
    if n * (n - 1) <= max_pairs:
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        return i, j
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=max_pairs)
    j = rng.integers(0, n, size=max_pairs)
    same = i == j
    j[same] = (j[same] + 1) % n
    return i, j


def covariance_spectrum(x) -> np.ndarray:
    """Eigenvalues (descending) of the sample covariance: s^2 / (n - 1) for the singular values s of X - mean."""
    x = _features(x)
    if len(x) < 2:
        raise ValueError(f"need at least 2 clips for a covariance, got {len(x)}")
    xc = x - x.mean(0)
    if xc.shape[0] > xc.shape[1]:  # tall: the singular values of R (X = QR) are those of X, and cheaper to get
        xc = np.linalg.qr(xc, mode="r")
    s = np.linalg.svd(xc, compute_uv=False)
    return s ** 2 / (len(x) - 1)


def effective_rank(eigenvalues) -> float:
    """exp of the Shannon entropy of the normalised eigenvalues."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    p = lam / lam.sum()
    return float(np.exp(-np.sum(p * np.log(np.maximum(p, _EPS)))))


def participation_ratio(eigenvalues) -> float:
    """(sum lambda)^2 / sum lambda^2."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    return float(lam.sum() ** 2 / max(float(np.sum(lam ** 2)), _EPS))


def isotropy_ratio(eigenvalues) -> float:
    """lambda_max / mean(lambda): 1 for isotropic features, large for a dominant direction."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    return float(lam.max() / max(lam.mean(), _EPS))


def explained_variance_k(eigenvalues, fraction: float = 0.9) -> int:
    """Smallest k such that the k largest eigenvalues hold at least `fraction` of the total."""
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    k = int(np.searchsorted(np.cumsum(lam), fraction * lam.sum(), side="left")) + 1
    return int(np.clip(k, 1, lam.size))


def condition_number(eigenvalues) -> float:
    """lambda_max / max(lambda_min, 1e-12)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    return float(lam.max() / max(lam.min(), _EPS))


def uniformity(x, t: float = 2.0, max_pairs: int = 20_000, seed: int = 0) -> float:
    """log mean_{(i,j), i != j} exp(-t ||z_i - z_j||^2) on L2-normalised rows (pairs from `sample_pairs`)."""
    z = _unit_rows(_features(x))
    i, j = sample_pairs(len(z), max_pairs, seed)
    sq = np.maximum(2.0 - 2.0 * np.einsum("nd,nd->n", z[i], z[j]), 0.0)
    a = -t * sq
    top = a.max()
    return float(top + np.log(np.mean(np.exp(a - top))))


def geometry_metrics(x, max_pairs: int = 20_000, seed: int = 0) -> dict[str, float]:
    """Every geometry statistic of `x` (n, d) in one dict (definitions in the module docstring)."""
    x = _features(x)
    norms = np.linalg.norm(x, axis=1)
    i, j = sample_pairs(len(x), max_pairs, seed)
    z = _unit_rows(x)
    cos = np.einsum("nd,nd->n", z[i], z[j])
    dist = np.linalg.norm(x[i] - x[j], axis=1)
    out = {
        "norm_mean": float(norms.mean()), "norm_std": float(norms.std()),
        "cosine_mean": float(cos.mean()), "cosine_std": float(cos.std()),
        "distance_mean": float(dist.mean()), "distance_std": float(dist.std()),
    }
    lam = covariance_spectrum(x)
    if not np.isfinite(lam.sum()) or lam.sum() <= _EPS:  # all clips identical: spectrum undefined
        out.update(effective_rank=0.0, participation_ratio=0.0, isotropy_ratio=float("nan"),
                   explained_variance_k90=0.0, condition_number=float("nan"))
    else:
        out.update(effective_rank=effective_rank(lam), participation_ratio=participation_ratio(lam),
                   isotropy_ratio=isotropy_ratio(lam), explained_variance_k90=float(explained_variance_k(lam, 0.9)),
                   condition_number=condition_number(lam))
    out["uniformity"] = uniformity(x, 2.0, max_pairs, seed)
    return out


def two_nearest_distances(x) -> tuple[np.ndarray, np.ndarray]:
    """(r1, r2): each row's Euclidean distance to its nearest and second-nearest other row."""
    x = _features(x)
    n = len(x)
    if n < 3:
        raise ValueError(f"need at least 3 clips for two nearest neighbours, got {n}")
    x = x - x.mean(0)  # distances are translation-invariant; centring keeps the Gram route accurate
    sq = np.einsum("nd,nd->n", x, x)
    nearest = np.empty((n, 2), dtype=np.int64)
    for start in range(0, n, ROW_BLOCK):
        rows = np.arange(start, min(start + ROW_BLOCK, n))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * (x[rows] @ x.T)
        d2[np.arange(len(rows)), rows] = np.inf  # a point is not its own neighbour
        two = np.argpartition(d2, 1, axis=1)[:, :2]
        order = np.argsort(np.take_along_axis(d2, two, 1), axis=1)
        nearest[rows] = np.take_along_axis(two, order, 1)
    # the neighbours come from the Gram route; their distances are recomputed directly, without cancellation
    r = np.linalg.norm(x[:, None, :] - x[nearest], axis=2)
    r.sort(axis=1)
    return r[:, 0], r[:, 1]


def twonn_dimension(x) -> float:
    """Intrinsic dimension by TwoNN: (N - 1) / sum log(r2 / r1) over points with r1 > 0 (module docstring)."""
    r1, r2 = two_nearest_distances(x)
    keep = r1 > 0
    if keep.sum() < 3:
        return float("nan")
    total = float(np.sum(np.log(r2[keep] / r1[keep])))
    return (int(keep.sum()) - 1) / total if total > 0 else float("nan")
