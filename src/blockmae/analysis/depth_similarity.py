"""How much each block (or layer) changes the representation, measured three ways on pooled features, as
(metric, value, where) entries the suite turns into rows.

- CKA between consecutive blocks, plain (the paper's estimator) and debiased (unbiased HSIC, Song et al. 2012;
  Nguyen et al. 2021): plain CKA is inflated when clips are few relative to the feature dimension, which could
  make late blocks look saturated; the pair shows how much of a plateau survives without that bias.
- Mutual k-nearest-neighbour alignment between consecutive blocks (Huh et al. 2024): do the two blocks rank the
  same clips as each clip's nearest? Local structure only, where CKA weighs the global one.
- TwoNN intrinsic dimension at each block (Facco et al. 2017).

The O(n^2) metrics (RBF CKA, mutual kNN, TwoNN) use at most MAX_CLIPS clips, the same seeded subsample for all;
linear CKA works in feature space and uses every clip. Definitions: `blockmae.eval` and docs/similarity.md.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..eval import cka_matrix, knn_indices, linear_cka, neighbour_overlap, rbf_cka, twonn_dimension

MAX_CLIPS = 2048  # clips for the O(n^2) metrics
KNN_K = 10  # neighbours per clip in mutual kNN alignment (the default of Huh et al.'s code)
DEBIASED_MIN_CLIPS = 4  # the unbiased HSIC divides by n - 3

Entry = tuple[str, float, dict]


def subsample(n: int) -> np.ndarray:
    """The clips every O(n^2) metric uses: the first MAX_CLIPS of a permutation seeded 0."""
    return np.random.default_rng(0).permutation(n)[:MAX_CLIPS]


def cka_entries(blocks: Sequence[np.ndarray], layers: Sequence[np.ndarray] | None = None) -> Iterator[Entry]:
    """Plain and debiased CKA: linear and RBF between consecutive blocks (block, block2 = block + 1), and linear
    layer x layer within the run (layer, layer2) when `layers` is given."""
    n = len(blocks[0])
    sub = subsample(n)
    debiased = n >= DEBIASED_MIN_CLIPS
    for k in range(len(blocks) - 1):
        a, b = blocks[k], blocks[k + 1]
        where = {"block": k + 1, "block2": k + 2}
        yield "cka_linear", linear_cka(a, b), where
        yield "cka_rbf", rbf_cka(a[sub], b[sub]), where
        if debiased:
            yield "cka_linear_debiased", linear_cka(a, b, debiased=True), where
            yield "cka_rbf_debiased", rbf_cka(a[sub], b[sub], debiased=True), where
    if layers is None:
        return
    for metric, unbiased in (("cka_linear", False), ("cka_linear_debiased", True)):
        if unbiased and not debiased:
            continue
        matrix = cka_matrix(layers, None, kind="linear", debiased=unbiased)
        for i in range(len(layers)):
            for j in range(len(layers)):
                yield metric, matrix[i, j], {"layer": i + 1, "layer2": j + 1}


def _consecutive_alignment(feats: Sequence[np.ndarray], unit: str, sub: np.ndarray) -> Iterator[Entry]:
    """Mutual kNN between units i and i + 1, each unit's neighbours found once."""
    if len(sub) <= KNN_K:  # too few clips for k neighbours each
        return
    neighbours = [knn_indices(x[sub], KNN_K) for x in feats]
    for i in range(len(feats) - 1):
        yield "mutual_knn", neighbour_overlap(neighbours[i], neighbours[i + 1]), {unit: i + 1, f"{unit}2": i + 2}


def neighbour_entries(blocks: Sequence[np.ndarray], layers: Sequence[np.ndarray] | None = None) -> Iterator[Entry]:
    """Mutual kNN alignment between consecutive blocks (and layers), TwoNN dimension at every block (and layer)."""
    sub = subsample(len(blocks[0]))
    units = [("block", blocks)] + ([("layer", layers)] if layers is not None else [])
    for unit, feats in units:
        yield from _consecutive_alignment(feats, unit, sub)
        if len(sub) >= 3:
            for i, x in enumerate(feats, 1):
                yield "twonn_id", twonn_dimension(x[sub]), {unit: i}
