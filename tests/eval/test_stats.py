import math

import numpy as np
import pytest

from blockmae.eval import mean_ci


def test_t_interval_by_hand():
    values = [0.40, 0.42, 0.47]
    mean = sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t_{0.975, 2} from a t table
    m, low, high = mean_ci(values)
    assert m == pytest.approx(mean)
    assert low == pytest.approx(mean - half) and high == pytest.approx(mean + half)


def test_wider_at_higher_confidence_and_degenerate_cases():
    values = [1.0, 2.0, 4.0, 3.0]
    _, l90, h90 = mean_ci(values, 0.90)
    _, l99, h99 = mean_ci(values, 0.99)
    assert l99 < l90 < h90 < h99
    m, low, high = mean_ci([0.3])
    assert m == 0.3 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in mean_ci([]))
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)


def test_bootstrap_interval():
    values = np.array([0.1, 0.5, 0.2, 0.9, 0.4])
    m, low, high = mean_ci(values, method="bootstrap", seed=1)
    assert m == pytest.approx(values.mean())
    assert values.min() <= low < m < high <= values.max()
    rng = np.random.default_rng(1)
    means = values[rng.integers(0, 5, size=(1000, 5))].mean(1)
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))
    with pytest.raises(ValueError):
        mean_ci(values, method="normal")


def test_seeds_to_exclude_is_the_first_n_whose_interval_clears_the_value():
    from scipy import stats

    from blockmae.eval.stats import seeds_to_exclude

    values = [0.01, 0.03, -0.005, 0.02]
    n = seeds_to_exclude(values)
    mean, s = np.mean(values), np.std(values, ddof=1)
    half = lambda k: stats.t.ppf(0.975, k - 1) * s / np.sqrt(k)  # noqa: E731
    assert half(n) < abs(mean) <= half(n - 1)
    assert seeds_to_exclude([0.5, 0.5]) == 2 and seeds_to_exclude([0.1, -0.1]) is None and seeds_to_exclude([1.0]) is None
