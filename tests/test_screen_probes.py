"""The screen's probe rule on known rows: both parts, their intervals against a direct formula, each of its four
outcomes, and where each target peaks."""

import math

import numpy as np
import pytest
from scipy import stats

from blockmae.analysis.rows import make_row
from blockmae.screen.probes import probe_blocks, probe_markdown, probe_rule

K = 4


def _rows(deep: dict[int, list[float]], random: list[list[float]], metric="probe_acc", targets=None) -> list[dict]:
    """Rows of the final models: deep seed -> mean probe per block, random encoder -> per block; `targets`:
    target -> per-block values given to every deep seed (and 0.5 to the random encoders)."""
    rows = []
    for seed, per_block in deep.items():
        meta = {"run": f"depth12-s{seed}", "regime": "e2e", "model": "vit", "K": K, "seed": seed}
        rows += [make_row(meta, "h", "test", metric, v, block=b) for b, v in enumerate(per_block, 1)]
        for target, values in (targets or {}).items():
            rows += [make_row(meta, "h", "test", metric, v, block=b, target=target) for b, v in enumerate(values, 1)]
        rows.append(make_row(meta, "h", "test", metric, 0.99, block=2, step=100))  # a snapshot: never read
    for seed, per_block in enumerate(random):
        meta = {"run": f"random-s{seed}", "regime": "random", "model": "vit", "K": K, "seed": seed}
        rows += [make_row(meta, "h", "test", metric, v, block=b) for b, v in enumerate(per_block, 1)]
        rows += [make_row(meta, "h", "test", metric, 0.5, block=b, target=t) for b in range(1, K + 1)
                 for t in (targets or {})]
    return rows


KINDS = {f"depth12-s{s}": "deep" for s in range(5)}
RANDOM = [[0.30, 0.30, 0.30, 0.31], [0.30, 0.30, 0.30, 0.29], [0.30, 0.30, 0.30, 0.30]]


def test_the_rule_is_met_when_the_final_block_clears_both_bars_and_its_intervals_match_the_t_formula():
    deep = {0: [0.40, 0.44, 0.47, 0.48], 1: [0.41, 0.45, 0.48, 0.50], 2: [0.39, 0.42, 0.46, 0.46]}
    rule = probe_rule(_rows(deep, RANDOM), KINDS, K)
    assert set(rule) == {"linear"}  # no attentive rows, no attentive verdict
    linear = rule["linear"]
    rise = np.array([8.0, 9.0, 7.0])  # final minus block 1, pp, per seed
    half = stats.t.ppf(0.975, 2) * rise.std(ddof=1) / math.sqrt(3)
    assert linear["rise"]["mean"] == pytest.approx(8.0)
    assert (linear["rise"]["low"], linear["rise"]["high"]) == (pytest.approx(8.0 - half), pytest.approx(8.0 + half))
    welch = stats.ttest_ind([48.0, 50.0, 46.0], [31.0, 29.0, 30.0], equal_var=False)
    assert linear["above_random"]["mean"] == pytest.approx(48.0 - 30.0)
    assert linear["above_random"]["low"] == pytest.approx(welch.confidence_interval(0.95).low)
    assert linear["outcome"] == linear["rise"]["outcome"] == linear["above_random"]["outcome"] == "met"
    assert linear["seeds"] == 3 and linear["random_encoders"] == 3
    table = probe_markdown(rule, K)
    assert next(line for line in table if line.startswith("| linear | 3")).endswith("| met |")


@pytest.mark.parametrize("deep, part, outcome", [
    # +12, +1, +2: the mean reaches 5 but the interval reaches below zero
    ({0: [0.40, 0.44, 0.47, 0.52], 1: [0.41, 0.45, 0.48, 0.42], 2: [0.39, 0.42, 0.46, 0.41]}, "rise", "inconclusive"),
    # +3, +3.1, +2.9: clear of zero, and the whole interval below 5
    ({0: [0.40, 0.42, 0.43, 0.43], 1: [0.41, 0.43, 0.44, 0.441], 2: [0.39, 0.41, 0.42, 0.419]}, "rise", "not met"),
    # 8 pp above random with an interval of about +-4: the bar of 10 inside it
    ({0: [0.30, 0.34, 0.37, 0.38], 1: [0.31, 0.35, 0.38, 0.40], 2: [0.29, 0.32, 0.36, 0.36]}, "above_random",
     "inconclusive"),
])
def test_a_part_short_of_its_bar_is_not_met_when_its_interval_says_so_and_inconclusive_otherwise(deep, part, outcome):
    linear = probe_rule(_rows(deep, RANDOM), KINDS, K)["linear"]
    assert linear[part]["outcome"] == linear["outcome"] == outcome
    other = {"rise": "above_random", "above_random": "rise"}[part]
    assert linear[other]["outcome"] == "met"


def test_one_seed_has_no_interval_and_so_is_not_measured():
    rule = probe_rule(_rows({0: [0.40, 0.45, 0.50, 0.60]}, RANDOM), KINDS, K)["linear"]
    assert rule["rise"]["mean"] == pytest.approx(20.0) and rule["rise"]["n"] == 1
    assert rule["rise"]["outcome"] == rule["above_random"]["outcome"] == rule["outcome"] == "not measured"
    assert "(no interval)" in "\n".join(probe_markdown({"linear": rule}, K))


def test_each_probe_is_judged_on_its_own_rows_and_targets_peak_at_the_first_block_near_their_best():
    deep = {s: [0.40, 0.44, 0.47, 0.48 + 0.01 * s] for s in range(3)}
    targets = {"root": [0.20, 0.25, 0.30, 0.295], "leaf": [1.0, 1.0, 0.998, 1.0]}
    rows = _rows(deep, RANDOM, targets=targets)
    rows += _rows({s: [0.40, 0.41, 0.41, 0.41] for s in range(3)}, RANDOM, "attentive_probe_acc")
    rule = probe_rule(rows, KINDS, K)
    assert rule["linear"]["outcome"] == "met" and rule["attentive"]["outcome"] == "not met"
    assert rule["linear"]["targets"]["root"]["peak_block"] == 3  # 0.295 at block 4 is within 1 pp of 0.30
    assert rule["linear"]["targets"]["leaf"]["peak_block"] == 1  # saturated: decoded at the first block
    assert rule["linear"]["targets"]["root"]["random"] == pytest.approx(0.5)
    lines = probe_markdown(rule, K)
    assert "| linear | root | 20.0 | 25.0 | 30.0 | 29.5 | 50.0 | block 3 (upper half) |" in lines
    assert probe_blocks(rows, KINDS, K, "attentive_probe_acc")["deep"][3][0] == pytest.approx(0.41)
    assert probe_blocks(rows, KINDS, K)["random"][0][0] == pytest.approx(0.30)
