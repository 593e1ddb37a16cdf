"""The probe rule (the screen's and every study's) on known rows: both parts, their intervals against a direct formula,
each of its four outcomes, where each target peaks, and the rule per trained group of a study."""

import math

import numpy as np
import pytest
from scipy import stats

from blockmae.analysis.rows import make_row
from blockmae.report.probe_rule import probe_blocks, probe_markdown, probe_rule

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


def _group_rows(regime: str, K: int, per_seed: dict[int, list[float]], model: str = "vit") -> list[dict]:
    rows = []
    for seed, per_block in per_seed.items():
        run = f"{regime}-K{K}-s{seed}" if regime != "random" else f"random-K{K}-s{seed}"
        meta = {"run": run, "regime": regime, "model": model, "K": K, "seed": seed}
        rows += [make_row(meta, "h", "test", "probe_acc", v, block=b) for b, v in enumerate(per_block, 1)]
    return rows


def test_a_study_judges_each_trained_group_against_the_random_encoders_final_blocks():
    from blockmae.report.probe_rule import study_probe_markdown, study_probe_rule
    e2e = {0: [0.30, 0.34, 0.38, 0.45], 1: [0.31, 0.35, 0.40, 0.47], 2: [0.29, 0.33, 0.39, 0.44]}
    sim = {0: [0.40, 0.40, 0.39, 0.38], 1: [0.41, 0.40, 0.40, 0.39], 2: [0.40, 0.41, 0.39, 0.38]}
    floor = {s: [0.90, 0.90, 0.90, 0.25 + 0.01 * s] for s in range(3)}  # only their final block is the floor
    e2e6 = {s: [0.3] * 5 + [0.4] for s in range(3)}
    rows = (_group_rows("e2e", 4, e2e) + _group_rows("simultaneous", 4, sim) + _group_rows("random", 4, floor)
            + _group_rows("e2e", 6, e2e6) + _group_rows("sequential", 4, sim, model="other"))
    judged = {(g.regime, int(g.K)): r["linear"] for g, r in study_probe_rule(rows, "h").items()}
    assert set(judged) == {("e2e", 4), ("simultaneous", 4), ("e2e", 6)}  # no random encoders of model "other"
    tops = [100 * v[-1] for v in floor.values()]
    assert judged[("e2e", 4)]["above_random"]["mean"] == pytest.approx(np.mean([100 * v[-1] for v in e2e.values()])
                                                                      - np.mean(tops))
    assert judged[("e2e", 4)]["rise"]["mean"] == pytest.approx(np.mean([100 * (v[-1] - v[0]) for v in e2e.values()]))
    assert judged[("e2e", 4)]["random_encoders"] == 3 and judged[("e2e", 4)]["outcome"] == "met"
    assert judged[("simultaneous", 4)]["outcome"] == "not met"  # falls with depth: the rise lies wholly below 5 pp
    # K=6 against the same encoders' final blocks (cut into 4, they end at the same layer)
    assert judged[("e2e", 6)]["above_random"]["mean"] == pytest.approx(40 - np.mean(tops))
    page = study_probe_markdown(rows)
    assert "| h | e2e K=4 | linear | 3 (3) |" in page and "| h | e2e K=6 | linear | 3 (3) |" in page
    assert study_probe_markdown(_group_rows("e2e", 4, e2e)) == ""  # no floor, no rule


def test_findings_md_ends_with_the_probe_rule_per_group(tmp_path):
    from blockmae.study import write_findings
    e2e = {0: [0.30, 0.34, 0.38, 0.45], 1: [0.31, 0.35, 0.40, 0.47], 2: [0.29, 0.33, 0.39, 0.44]}
    write_findings(tmp_path, _group_rows("e2e", 4, e2e) + _group_rows("random", 4, {s: [0.25] * 4 for s in range(3)}),
                   {})
    section = (tmp_path / "findings.md").read_text().split("## Do the final blocks read the latents")[1]
    assert "| h | e2e K=4 | linear | 3 (3) | +20.3 [" in section and "| met |" in section


def test_the_report_shows_the_probe_rule_per_group(tmp_path):
    from blockmae.report.page import write_report
    e2e = {0: [0.30, 0.34, 0.38, 0.45], 1: [0.31, 0.35, 0.40, 0.47], 2: [0.29, 0.33, 0.39, 0.44]}
    rows = _group_rows("e2e", 4, e2e) + _group_rows("random", 4, {s: [0.25] * 4 for s in range(3)})
    page = write_report(tmp_path, rows, {}, [], {}).read_text()
    row = page[page.index("h: does it take the depth?"):].split("</tr>")[1]
    assert ">linear<" in row and "+20.3 [" in row and ">met<" in row
