"""Centered kernel alignment (CKA) between representations of the same clips.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. 2019), with
- the biased HSIC, tr(K H L H) (H the centring matrix): the authors' estimator
  (`eva_embeddings.linear_cka` / `rbf_cka`) and the one the paper reports;
- the unbiased HSIC_1 of Song et al. (2012) when `debiased=True`, as Nguyen et al. (2021)
  use: K~ = K with zero diagonal,
  HSIC_1 = [tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)),
  which removes the finite-sample bias that makes unrelated representations look similar
  when n is small and d large.
Linear CKA is computed in feature space (d x d products, so n = 10,000 costs no n x n
matrix); on centred features, with k_i = ||x_i||^2, HSIC_1 reduces to
[||Y'X||_F^2 - n/(n-2) k'l + (sum k)(sum l)/((n-1)(n-2))] / (n(n-3)).
RBF CKA uses a Gaussian kernel exp(-||a-b||^2 / (2 sigma^2)) with sigma = sigma_frac x the
median pairwise Euclidean distance (off-diagonal pairs), per representation, as the
authors do (their gamma = 1 / (2 median^2)).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def _features(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"representation must be (n, d), got shape {x.shape}")
    return x


def _check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"representations must hold the same clips: {x.shape[0]} vs {y.shape[0]} rows")


def _need_n(n: int, debiased: bool) -> None:
    if debiased and n < 4:
        raise ValueError(f"debiased HSIC needs at least 4 clips, got {n}")


# ---------------------------------------------------------------- linear, feature space
class _Linear:
    """Centred features plus what the linear HSIC estimators need from them."""

    def __init__(self, x):
        x = _features(x)
        self.x = x - x.mean(0)
        self.n = x.shape[0]
        self.sq_rows = np.einsum("nd,nd->n", self.x, self.x)  # k_i = K_ii of the centred Gram matrix
        self.self_dot = self.dot(self)

    def dot(self, other: "_Linear") -> float:
        """||Y' X||_F^2 = tr(K L) for centred features (via the Gram route when n < d)."""
        a, b = self.x, other.x
        if self.n < max(a.shape[1], b.shape[1]):
            return float(np.sum((a @ a.T) * (b @ b.T)))
        return float(np.sum((b.T @ a) ** 2))

    def hsic(self, other: "_Linear", debiased: bool) -> float:
        xty = self.self_dot if other is self else self.dot(other)
        if not debiased:
            return xty
        n = self.n
        return (xty - n / (n - 2) * float(self.sq_rows @ other.sq_rows)
                + self.sq_rows.sum() * other.sq_rows.sum() / ((n - 1) * (n - 2))) / (n * (n - 3))


# ---------------------------------------------------------------- kernel (Gram) form
def _sq_distances(x: np.ndarray) -> np.ndarray:
    sq = np.einsum("nd,nd->n", x, x)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d, 0.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def rbf_gram(x, sigma_frac: float | None = None) -> np.ndarray:
    """Gaussian Gram matrix, bandwidth sigma = sigma_frac x median off-diagonal pairwise distance (nan if 0)."""
    x = _features(x)
    d2 = _sq_distances(x)
    iu = np.triu_indices(len(x), k=1)
    median = float(np.median(np.sqrt(d2[iu]))) if len(iu[0]) else 0.0
    sigma = (1.0 if sigma_frac is None else sigma_frac) * median
    if sigma <= 0.0:
        return np.full_like(d2, np.nan)
    return np.exp(-d2 / (2.0 * sigma * sigma))


def _center_gram(k: np.ndarray) -> np.ndarray:
    return k - k.mean(0, keepdims=True) - k.mean(1, keepdims=True) + k.mean()


class _Gram:
    """A kernel matrix prepared for the biased (centred) or unbiased (zero-diagonal) HSIC."""

    def __init__(self, k: np.ndarray, debiased: bool):
        self.n, self.debiased = k.shape[0], debiased
        if debiased:
            self.k = k.copy()
            np.fill_diagonal(self.k, 0.0)
            self.rows = self.k.sum(1)
            self.total = self.rows.sum()
        else:
            self.k = _center_gram(k)

    def hsic(self, other: "_Gram") -> float:
        tr = float(np.sum(self.k * other.k))  # tr(K L) for symmetric K, L
        if not self.debiased:
            return tr
        n = self.n
        return (tr + self.total * other.total / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * float(self.rows @ other.rows)) / (n * (n - 3))


def hsic(k, l, debiased: bool = False) -> float:
    """HSIC between two n x n kernel matrices: tr(K H L H) (biased, unnormalised) or Song et al.'s HSIC_1."""
    k, l = np.asarray(k, dtype=np.float64), np.asarray(l, dtype=np.float64)
    if k.shape != l.shape or k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"kernel matrices must be square and equal in shape, got {k.shape} and {l.shape}")
    _need_n(k.shape[0], debiased)
    return _Gram(k, debiased).hsic(_Gram(l, debiased))


def _ratio(xy: float, xx: float, yy: float) -> float:
    denom = np.sqrt(xx * yy) if xx > 0 and yy > 0 else 0.0
    return float(xy / denom) if denom > 0 else float("nan")


# ---------------------------------------------------------------- public CKA functions
def linear_cka(x, y, debiased: bool = False) -> float:
    """Linear CKA: ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) on centred features (HSIC_1-based when debiased)."""
    a, b = _Linear(x), _Linear(y)
    _check_pair(a.x, b.x)
    _need_n(a.n, debiased)
    return _ratio(a.hsic(b, debiased), a.hsic(a, debiased), b.hsic(b, debiased))


def rbf_cka(x, y, sigma_frac: float | None = None, debiased: bool = False) -> float:
    """RBF CKA with a Gaussian kernel per representation, sigma = sigma_frac (default 1) x median distance."""
    x, y = _features(x), _features(y)
    _check_pair(x, y)
    _need_n(len(x), debiased)
    k, l = rbf_gram(x, sigma_frac), rbf_gram(y, sigma_frac)
    if np.isnan(k).any() or np.isnan(l).any():
        return float("nan")
    a, b = _Gram(k, debiased), _Gram(l, debiased)
    return _ratio(a.hsic(b), a.hsic(a), b.hsic(b))


def minibatch_cka(x, y=None, *, batch_size: int = 256, kind: str = "linear", sigma_frac: float | None = None,
                  seed: int = 0) -> float:
    """Minibatch CKA (Nguyen et al. 2021): sum_b HSIC_1(K_b, L_b) / sqrt(sum_b HSIC_1(K_b, K_b) sum_b HSIC_1(L_b, L_b)).

    Either two arrays (rows shuffled with `seed`, cut into batches of `batch_size`; a last
    batch under 4 clips is dropped) or, with `y=None`, an iterable of (x_batch, y_batch)
    pairs. Each batch uses the unbiased HSIC_1, so the sums estimate the full-data HSIC
    without the small-batch bias. RBF bandwidths are each batch's median distance.
    """
    if kind not in ("linear", "rbf"):
        raise ValueError(f"kind must be 'linear' or 'rbf', got {kind!r}")
    if y is None:
        pairs: Iterable = x
    else:
        xa, ya = _features(x), _features(y)
        _check_pair(xa, ya)
        order = np.random.default_rng(seed).permutation(len(xa))
        pairs = ((xa[order[s:s + batch_size]], ya[order[s:s + batch_size]]) for s in range(0, len(xa), batch_size))
    xy = xx = yy = 0.0
    used = 0
    for xb, yb in pairs:
        xb, yb = _features(xb), _features(yb)
        _check_pair(xb, yb)
        if len(xb) < 4:
            continue
        if kind == "linear":
            a, b = _Linear(xb), _Linear(yb)
            xy, xx, yy = xy + a.hsic(b, True), xx + a.hsic(a, True), yy + b.hsic(b, True)
        else:
            a, b = _Gram(rbf_gram(xb, sigma_frac), True), _Gram(rbf_gram(yb, sigma_frac), True)
            xy, xx, yy = xy + a.hsic(b), xx + a.hsic(a), yy + b.hsic(b)
        used += 1
    if not used:
        raise ValueError("minibatch_cka got no batch with at least 4 clips")
    return _ratio(xy, xx, yy)


def cka_matrix(feats_a: Sequence, feats_b: Sequence | None = None, kind: str = "linear", debiased: bool = False,
               sigma_frac: float | None = None) -> np.ndarray:
    """CKA between every pair of representations: (len(a), len(b)) array.

    With `feats_b=None`, the symmetric matrix within one run (e.g. layer x layer); otherwise
    across two runs on the same clips (e.g. blockwise blocks x E2E blocks). Each
    representation is prepared once (centred features, or its kernel matrix for `rbf`).
    """
    if kind not in ("linear", "rbf"):
        raise ValueError(f"kind must be 'linear' or 'rbf', got {kind!r}")

    def prepare(feats):
        out = []
        for f in feats:
            f = _features(f)
            _need_n(len(f), debiased)
            out.append(_Linear(f) if kind == "linear" else _Gram(rbf_gram(f, sigma_frac), debiased))
        return out

    def pair(p, q) -> float:
        if kind == "linear":
            return p.hsic(q, debiased)
        return p.hsic(q)

    a = prepare(feats_a)
    b = a if feats_b is None else prepare(feats_b)
    n_rows = {p.n for p in a + b}
    if len(n_rows) > 1:
        raise ValueError(f"all representations must hold the same clips, got row counts {sorted(n_rows)}")
    self_a = [pair(p, p) for p in a]
    self_b = self_a if feats_b is None else [pair(q, q) for q in b]
    out = np.empty((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            if feats_b is None and j < i:
                out[i, j] = out[j, i]
                continue
            xy = self_a[i] if (feats_b is None and i == j) else pair(p, q)
            out[i, j] = _ratio(xy, self_a[i], self_b[j])
    return out
