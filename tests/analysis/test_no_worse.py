"""The non-inferiority rule (a cheaper setting within a margin of the base on every target) reaches each outcome,
and its one-sided p-values are scipy's one-sample t-tests."""

import numpy as np
import pytest
from scipy import stats

from blockmae.report.depth_rule import INCONCLUSIVE, MET, NOT_MEASURED, NOT_MET
from blockmae.report.no_worse import no_worse
from blockmae.report.verdicts import holm, one_sided


def test_each_outcome():
    assert no_worse({"a": [0.1, -0.2, 0.05], "b": [0.3, 0.2, 0.25]}, 1.0)[0] == MET
    outcome, reason, _ = no_worse({"a": [0.1, -0.2, 0.05], "b": [-3.0, -3.2, -2.9]}, 1.0)
    assert outcome == NOT_MET and "b" in reason and "a" not in reason.split("on ")[1]
    outcome, reason, _ = no_worse({"a": [2.0, -3.0, 0.5], "b": [0.3, 0.2, 0.25]}, 1.0)
    assert outcome == INCONCLUSIVE and "on a " in reason
    assert no_worse({"a": [0.5]}, 1.0)[0] == NOT_MEASURED
    assert no_worse({}, 1.0)[0] == NOT_MEASURED


def test_a_clear_gain_is_met_and_a_loss_inside_the_margin_needs_a_tight_interval():
    assert no_worse({"a": [5.0, 6.0, 5.5]}, 1.0)[0] == MET
    assert no_worse({"a": [-0.5, -0.4, -0.6]}, 1.0)[0] == MET  # below the base, but clearly inside the margin
    assert no_worse({"a": [-0.5, -1.4, 0.6]}, 1.0)[0] == INCONCLUSIVE


def test_p_values_are_scipys_one_sided_t_tests_then_holm():
    cells = {"a": [0.2, -0.7, 0.4, 0.1], "b": [-0.3, -0.6, 0.2, -0.1]}
    for target, values in cells.items():
        v = np.asarray(values)
        above, below = one_sided(v.mean(), v.std(ddof=1) / np.sqrt(v.size), v.size - 1, -1.0)
        assert above == pytest.approx(stats.ttest_1samp(v, -1.0, alternative="greater").pvalue)
        assert below == pytest.approx(stats.ttest_1samp(v, -1.0, alternative="less").pvalue)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
