"""Uncertainty over runs (seeds): mean with a confidence interval.

`method="t"` (default): mean +- t_{(1+c)/2, n-1} * s / sqrt(n), s the sample standard
deviation (ddof=1): the usual interval for a handful of seeds. `method="bootstrap"`: the
percentile bootstrap of the mean, which is what the authors' figures show (seaborn's
default errorbar ("ci", 95), 1,000 resamples); with 3 runs it is much narrower than the t
interval, so the figures should say which one they draw. With one value the interval is
undefined: (value, nan, nan).
"""

from __future__ import annotations

import numpy as np


def t_quantile(q: float, dof):
    """Student's t quantile, one per degree of freedom when `dof` is an array (scipy imported here: training imports
    this package and should not load scipy)."""
    from scipy import stats

    quantile = stats.t.ppf(q, dof)
    return float(quantile) if np.ndim(quantile) == 0 else quantile


def mean_ci(values, confidence: float = 0.95, method: str = "t", n_boot: int = 1000,
            seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of `values` at `confidence`; nan bounds for a single value, all nan for none."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size == 1:
        return mean, float("nan"), float("nan")
    if method == "t":
        half = float(t_quantile((1 + confidence) / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
        return mean, mean - half, mean + half
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(1)
        low, high = np.percentile(means, [50 * (1 - confidence), 50 * (1 + confidence)])
        return mean, float(low), float(high)
    raise ValueError(f"method must be 't' or 'bootstrap', got {method!r}")


def seeds_to_exclude(values, value: float = 0.0, confidence: float = 0.95, max_n: int = 1000) -> int | None:
    """How many runs would make the t-interval of the mean of `values` exclude `value`, if the mean and the
    standard deviation stayed as measured: the smallest n with t_{(1+c)/2, n-1} * s / sqrt(n) < |mean - value|.

    None when the mean equals `value` or fewer than two values give no spread (or n would exceed `max_n`).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2:
        return None
    gap, s = abs(float(v.mean()) - value), float(v.std(ddof=1))
    if gap == 0:
        return None
    if s == 0:
        return 2
    n = np.arange(2, max_n + 1)
    enough = np.flatnonzero(t_quantile((1 + confidence) / 2, n - 1) * s / np.sqrt(n) < gap)  # one vectorised call
    return int(n[enough[0]]) if enough.size else None
