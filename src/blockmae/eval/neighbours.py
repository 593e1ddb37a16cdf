"""Nearest-neighbour structure of pooled features X (n, d): which clips are each clip's neighbours, and whether
two representations of the same clips agree on them.

Mutual k-nearest-neighbour alignment (Huh et al. 2024, "The Platonic Representation Hypothesis", their
`mutual_knn` metric): for every clip i, N_X(i) = the k clips with the highest cosine similarity to i in X
(i itself excluded), likewise N_Y(i) in Y; the score is mean_i |N_X(i) ∩ N_Y(i)| / k. 1 means both
representations rank the same neighbours first; two representations with unrelated neighbourhoods score
about k / (n - 1), the overlap of two random k-subsets of the other n - 1 clips. Unlike CKA it looks only
at local structure and is indifferent to how far apart the clusters are.

Similarities are computed a block of rows at a time, so memory is O(block x n), not O(n^2); time is still
O(n^2 d), which is why the analysis subsamples clips.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12
ROW_BLOCK = 1024  # rows of the similarity matrix held at once


def _features(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {x.shape}")
    return x


def knn_indices(x, k: int) -> np.ndarray:
    """(n, k) indices of each row's k nearest rows by cosine similarity, itself excluded (unordered within a row)."""
    x = _features(x)
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1} clips, got k={k}")
    z = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, ROW_BLOCK):
        rows = np.arange(start, min(start + ROW_BLOCK, n))
        sim = z[rows] @ z.T
        sim[np.arange(len(rows)), rows] = -np.inf  # a clip is not its own neighbour
        out[rows] = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    return out


def neighbour_overlap(nx: np.ndarray, ny: np.ndarray) -> float:
    """mean_i |N_X(i) ∩ N_Y(i)| / k for two (n, k) neighbour-index arrays of the same clips."""
    if nx.shape != ny.shape:
        raise ValueError(f"neighbour sets must match in shape, got {nx.shape} and {ny.shape}")
    n, k = nx.shape
    both = np.concatenate([np.sort(nx, 1), np.sort(ny, 1)], axis=1)
    both.sort(axis=1)
    shared = np.sum(both[:, 1:] == both[:, :-1], axis=1)  # each index occurs at most once per set
    return float(shared.mean() / k)


def mutual_knn(x, y, k: int = 10) -> float:
    """Mutual k-nearest-neighbour alignment between two representations of the same clips (module docstring)."""
    x, y = _features(x), _features(y)
    if len(x) != len(y):
        raise ValueError(f"representations must hold the same clips: {len(x)} vs {len(y)} rows")
    return neighbour_overlap(knn_indices(x, k), knn_indices(y, k))
