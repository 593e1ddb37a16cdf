"""Every finding's rule driven into each of its four outcomes by synthetic study rows built for it."""

import zlib

import numpy as np
import pytest

from blockmae.report.findings import findings_markdown, measure_findings
from blockmae.report.saturation_finding import format_ci
from blockmae.report.verdicts import (INCONCLUSIVE, NOT_MEASURED, NOT_REPRODUCED, OUTCOMES, REPRODUCED, combine, holm,
                                       paired, welch)
from helpers import continuation_rows, stitching_rows

SEEDS, DATASETS, STEPS = (0, 1, 2), ("digits", "gratings"), 600


def jitter(scale: float, *key) -> float:
    """Deterministic noise of one (regime, K, dataset, metric, block, seed), independent across regimes."""
    return scale * np.random.default_rng(zlib.crc32(repr(key).encode())).standard_normal()


def study(Ks=(4,), regimes=("e2e", "simultaneous", "sequential"), noise=0.002, probe=None, cka=None, loss=None,
          mAP=None, token=None, occlusion=None, random_probe=0.3, random_cka=0.90, seq_steps=None, datasets=DATASETS):
    """Rows and summaries of a study. Each of probe, cka, loss, mAP, token, occlusion is a function (regime, K,
    block, dataset) -> value (cka: between block and block + 1); defaults give no effect anywhere. Every value
    gets seeded noise of size `noise`. The pretraining data is "scenes" (held-out losses and the copy's)."""
    probe = probe or (lambda r, K, b, d: 0.6)
    cka = cka or (lambda r, K, b, d: 0.95)
    loss = loss or (lambda r, K, b, d: 0.6)
    mAP = mAP or (lambda r, K, b, d: 0.2 + 0.02 * b)
    token = token or (lambda r, K, b, d: 0.5)
    occlusion = occlusion or (lambda r, K, b, d: 0.1)
    rows, summaries = [], {}
    for K in Ks:
        for regime in regimes:
            for seed in SEEDS:
                run = f"{regime}-K{K}-s{seed}"
                meta = {"run": run, "regime": regime, "model": "vit-tiny", "K": K, "seed": seed, "split": None,
                        "layer": None, "step": None, "target": "mean"}

                def add(metric, value, dataset, block=None, **extra):
                    rows.append({**meta, "dataset": dataset, "block": block, "metric": metric,
                                 "value": value + jitter(noise, regime, K, dataset, metric, block, seed), **extra})

                for dataset in datasets:
                    for b in range(1, K + 1):
                        add("probe_acc", probe(regime, K, b, dataset), dataset, b)
                        add("retrieval_map", mAP(regime, K, b, dataset), dataset, b)
                        add("token_similarity", token(regime, K, b, dataset), dataset, b)
                        add("occlusion_drop", occlusion(regime, K, b, dataset), dataset, b)
                        if b < K:
                            add("cka_linear", cka(regime, K, b, dataset), dataset, b, block2=b + 1)
                for b in range(1, K + 1):
                    add("recon_loss", loss(regime, K, b, "scenes"), "scenes", b)
                for name, value in (("zero", 1.0), ("position_mean", 0.9), ("visible_mean", 0.7),
                                    ("oracle_constant", 0.65)):
                    rows.append({**meta, "dataset": "scenes", "block": None, "metric": f"recon_loss_{name}",
                                 "value": value})
                steps = (seq_steps or STEPS) if regime == "sequential" else STEPS
                summaries[run] = {"regime": regime, "partition": [12 // K] * K, "seed": seed, "steps": steps,
                                  "held_out": {"data": "scenes"}}
    for seed in SEEDS:  # three random-init encoders
        meta = {"run": f"random-s{seed}", "regime": "random", "model": "vit-tiny", "K": 4, "seed": seed,
                "split": None, "layer": None, "step": None, "target": "mean"}
        for dataset in datasets:
            rows.append({**meta, "dataset": dataset, "block": 4, "metric": "probe_acc",
                         "value": random_probe + jitter(noise, "random", dataset, seed)})
            rows.append({**meta, "dataset": dataset, "block": 3, "block2": 4, "metric": "cka_linear",
                         "value": random_cka + jitter(noise, "random-cka", dataset, seed)})
    return rows, summaries


def verdict(number: str, **settings) -> dict:
    return measure_findings(*study(**settings))[number]


def bw(value_bw, value_e2e):
    return lambda r, K, b, d: value_e2e if r == "e2e" else value_bw


def test_the_statistics_match_scipy():
    from scipy import stats

    values = [0.4, 1.1, 0.7, 0.9]
    d = paired(values, margin=2.0)
    assert d.p_differs == pytest.approx(stats.ttest_1samp(values, 0).pvalue)
    tost = max(stats.ttest_1samp(values, -2.0, alternative="greater").pvalue,
               stats.ttest_1samp(values, 2.0, alternative="less").pvalue)
    assert d.p_equivalent == pytest.approx(tost)
    a, b = [1.0, 2.5, 3.0, 4.2], [0.1, 0.4, 1.9]
    w = welch(a, b, margin=1.0)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (w.low, w.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert w.p_differs == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    # Holm: sorted p x (m - rank), made monotone
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_parts_combine_into_one_verdict():
    yes, no, open_, absent = (REPRODUCED, ""), (NOT_REPRODUCED, ""), (INCONCLUSIVE, ""), (NOT_MEASURED, "")
    assert combine({"a": yes, "b": yes}) == REPRODUCED
    assert combine({"a": yes, "b": no}) == combine({"a": no, "b": absent}) == NOT_REPRODUCED
    assert combine({"a": yes, "b": open_}) == INCONCLUSIVE
    assert combine({"a": yes, "b": absent}) == NOT_MEASURED  # a part the finding needs has no data
    assert combine({"a": yes, "b": absent}, optional=("b",)) == REPRODUCED


# Finding 1: learns (below the copy), close to E2E (TOST at 2 pp, E2E above the random floor), grows with K.
LEARNS = bw(0.55, 0.55)  # every stage 0.15 below the copy's 0.7


CASES_1 = [
    (dict(loss=LEARNS, probe=bw(0.598, 0.6)), REPRODUCED),
    # the gap (0.4 pp at K=4, 0.6 pp at K=6) does not grow beyond the margin: equivalent, so not reproduced
    (dict(Ks=(4, 6), loss=LEARNS, probe=lambda r, K, b, d: 0.6 - (0.0 if r == "e2e" else 0.001 * K)), NOT_REPRODUCED),
    (dict(loss=LEARNS, probe=bw(0.5, 0.6)), NOT_REPRODUCED),  # a 10 pp gap
    (dict(loss=bw(0.75, 0.55), probe=bw(0.598, 0.6)), NOT_REPRODUCED),  # blockwise above the copy: learns nothing
    (dict(loss=LEARNS, probe=bw(0.598, 0.6), random_probe=0.6), INCONCLUSIVE),  # E2E no better than random
    (dict(loss=LEARNS, probe=bw(0.598, 0.6), noise=0.05), INCONCLUSIVE),
    (dict(regimes=("e2e",)), NOT_MEASURED),
]


@pytest.mark.parametrize("settings, outcome", CASES_1)
def test_finding_1(settings, outcome):
    assert verdict("1", **settings)["verdict"] == outcome


def test_finding_1_gap_growing_with_K():
    grows = lambda r, K, b, d: 0.6 - (0.0 if r == "e2e" else {4: 0.002, 6: 0.012}[K])  # 0.2 pp, then 1.2 pp
    f = verdict("1", Ks=(4, 6), loss=LEARNS, probe=grows, noise=0.0005)
    assert f["parts"]["grows with K"]["verdict"] == REPRODUCED and f["verdict"] == REPRODUCED
    gap = f["cells"]["gap_e2e_minus_bw_pp"]["simultaneous-K6"]
    assert gap["mean"] == pytest.approx(1.2, abs=0.2) and gap["n"] == len(SEEDS)


# Finding 2: BW ahead at block 1 (clear cells), E2E overtakes at the top where BW led.
def early(lead: float, top: float):
    return lambda r, K, b, d: 0.6 + (lead if b == 1 else top) * (1 if r != "e2e" else 0)


CASES_2 = [
    (dict(probe=early(0.10, -0.10)), REPRODUCED),
    (dict(probe=early(-0.10, -0.10)), NOT_REPRODUCED),
    (dict(probe=early(0.0, 0.0)), NOT_REPRODUCED),  # equivalent everywhere: nothing earlier
    (dict(probe=early(0.10, 0.10)), NOT_REPRODUCED),  # BW led but E2E never overtook
    (dict(probe=early(0.03, -0.03), noise=0.05), INCONCLUSIVE),
    (dict(regimes=("e2e",)), NOT_MEASURED),
]


@pytest.mark.parametrize("settings, outcome", CASES_2)
def test_finding_2(settings, outcome):
    assert verdict("2", **settings)["verdict"] == outcome


# Finding 3: BW's late consecutive CKA above E2E's (with room to move), BW losses flatter than E2E's.
SATURATING = bw(0.99, 0.95)
FLAT_BW = lambda r, K, b, d: 0.6 if r != "e2e" else 0.7 - 0.03 * b


CASES_3 = [
    (dict(cka=SATURATING, loss=FLAT_BW), REPRODUCED),
    (dict(cka=bw(0.90, 0.97), loss=FLAT_BW), NOT_REPRODUCED),
    (dict(cka=SATURATING, loss=FLAT_BW, random_cka=0.99), INCONCLUSIVE),  # no room: random init is already there
    (dict(cka=bw(0.96, 0.95), loss=FLAT_BW, noise=0.02), INCONCLUSIVE),
    (dict(regimes=("e2e",)), NOT_MEASURED),
]


@pytest.mark.parametrize("settings, outcome", CASES_3)
def test_finding_3(settings, outcome):
    assert verdict("3", **settings)["verdict"] == outcome


# Finding 4: per dataset, lower CKA goes with larger mAP gains.
def cka_spread(r, K, b, d):
    return 0.9 + 0.02 * b + {"e2e": 0.0, "simultaneous": 0.01, "sequential": 0.03}[r]


def gains(sign_by_dataset):
    """mAP whose gain from block b to b + 1 is sign x (1 - CKA(b, b+1)) per dataset."""
    def mAP(r, K, b, d):
        return 0.2 + sum(sign_by_dataset[d] * (1 - cka_spread(r, K, k, d)) for k in range(1, b))
    return mAP


@pytest.mark.parametrize("signs, outcome", [
    ({"digits": -1, "gratings": -1}, REPRODUCED),
    ({"digits": 1, "gratings": 1}, NOT_REPRODUCED),
    ({"digits": -1, "gratings": 1}, INCONCLUSIVE),  # the datasets' signs disagree
])
def test_finding_4(signs, outcome):
    f = verdict("4", cka=cka_spread, mAP=gains({d: -s for d, s in signs.items()}), noise=0.0005)
    assert f["verdict"] == outcome
    assert len(f["cells"]["rho_z"]) == len(DATASETS)  # one correlation per dataset, not one pooled
    if outcome == INCONCLUSIVE:
        assert "signs disagree" in f["key_numbers"]


def test_finding_4_not_measured_without_pairs():
    rows, summaries = study()
    rows = [r for r in rows if r["metric"] != "cka_linear"]
    assert measure_findings(rows, summaries)["4"]["verdict"] == NOT_MEASURED


# Finding 5: BW block-1 token similarity above E2E's, BW occlusion drop growing with depth.
CASES_5 = [
    (dict(token=bw(0.8, 0.5), occlusion=lambda r, K, b, d: 0.05 * b), REPRODUCED),
    (dict(token=bw(0.8, 0.5), occlusion=lambda r, K, b, d: 0.3 - 0.05 * b), NOT_REPRODUCED),  # drop falls
    (dict(token=bw(0.5, 0.8), occlusion=lambda r, K, b, d: 0.05 * b), NOT_REPRODUCED),
    (dict(token=bw(0.52, 0.5), occlusion=lambda r, K, b, d: 0.1 + 0.01 * b, noise=0.05), INCONCLUSIVE),
    (dict(regimes=("e2e",)), NOT_MEASURED),
]


@pytest.mark.parametrize("settings, outcome", CASES_5)
def test_finding_5(settings, outcome):
    assert verdict("5", **settings)["verdict"] == outcome


# Finding 6: with each stage given E2E's schedule, sequential's loss is lower but its probe worse.
SEQ_LOW = lambda r, K, b, d: 0.5 if r == "sequential" else 0.6
SEQ_WORSE = lambda r, K, b, d: 0.5 if r == "sequential" else 0.6


CASES_6 = [
    (dict(seq_steps=4 * STEPS, loss=SEQ_LOW, probe=SEQ_WORSE), REPRODUCED),
    (dict(seq_steps=4 * STEPS, loss=lambda r, K, b, d: 0.7 if r == "sequential" else 0.6, probe=SEQ_WORSE),
     NOT_REPRODUCED),
    (dict(seq_steps=4 * STEPS, loss=SEQ_LOW, probe=SEQ_WORSE, noise=0.08), INCONCLUSIVE),
    (dict(seq_steps=STEPS, loss=SEQ_LOW, probe=SEQ_WORSE), NOT_MEASURED),  # equal total steps: not tested
]


@pytest.mark.parametrize("settings, outcome", CASES_6)
def test_finding_6(settings, outcome):
    f = verdict("6", **settings)
    assert f["verdict"] == outcome
    if settings["seq_steps"] == STEPS:
        assert "not tested" in f["parts"]["lower loss"]["reason"]


# Finding 7: late-block saturation survives a debiased CKA.
def with_debiased(drop: float, cka=SATURATING):
    rows, summaries = study(cka=cka, noise=0.001)
    rows += [{**r, "metric": "cka_linear_debiased", "value": r["value"] - drop} for r in rows
             if r["metric"] == "cka_linear" and r["regime"] != "random"]
    return measure_findings(rows, summaries)["7"]


@pytest.mark.parametrize("drop, outcome", [(0.01, REPRODUCED), (0.06, INCONCLUSIVE), (0.15, NOT_REPRODUCED)])
def test_finding_7(drop, outcome):
    f = with_debiased(drop)
    assert f["verdict"] == outcome
    assert {"simultaneous-K4", "sequential-K4"} <= set(f["saturated"])
    cell = f["by_run"]["simultaneous-K4"]
    assert cell["plain_minus_debiased"]["values"] == pytest.approx([drop] * len(SEEDS))


def test_finding_7_without_a_plateau_or_rows():
    assert with_debiased(0.0, cka=lambda r, K, b, d: 0.5)["verdict"] == INCONCLUSIVE  # nothing saturated
    assert verdict("7")["verdict"] == NOT_MEASURED  # no debiased rows


# Finding 8: blockwise and E2E blocks form different interfaces (stitching).
SIX = {"e0": "e2e", "e1": "e2e", "e2": "e2e", "s0": "simultaneous", "s1": "simultaneous", "s2": "simultaneous"}
SEED_PAIRS = {("e2e", "e2e"): 1.0, ("simultaneous", "simultaneous"): 3.0}


@pytest.mark.parametrize("cross, jitter_pp, outcome", [
    ((5.0, 2.0), 0.2, REPRODUCED), ((3.0, -4.0), 0.2, NOT_REPRODUCED), ((3.0, -4.0), 6.0, INCONCLUSIVE),
    (None, 0, NOT_MEASURED),
])
def test_finding_8(cross, jitter_pp, outcome):
    rows, summaries = study()
    if cross:
        rows += stitching_rows(SEED_PAIRS | {("e2e", "simultaneous"): cross[0], ("simultaneous", "e2e"): cross[1]},
                               SIX, jitter=jitter_pp)
    assert measure_findings(rows, summaries)["8"]["verdict"] == outcome


# Finding 9: the blockwise gap lives in the upper blocks (frozen-base continuation).
@pytest.mark.parametrize("e2e, continued, outcome", [
    ([60, 61, 59.5], {0: [60] * 3, 1: [59] * 3, 2: [52] * 3, 3: [50] * 3}, REPRODUCED),  # upper blocks
    ([60, 61, 59.5], {0: [60] * 3, 1: [52] * 3, 2: [51] * 3, 3: [50] * 3}, NOT_REPRODUCED),  # lower blocks
    ([50.5, 51, 50], {0: [51] * 3}, INCONCLUSIVE),  # no gap to split
    (None, None, NOT_MEASURED),
])
def test_finding_9(e2e, continued, outcome):
    rows, summaries = study()
    if e2e:
        rows += continuation_rows(e2e, [50.0, 50.5, 49.0], continued)
    f = measure_findings(rows, summaries)["9"]
    assert f["verdict"] == outcome
    assert f["parts"]["outcome"]["reason"]  # the rule's own word (upper blocks, no gap, ...) is kept


def test_every_finding_reaches_every_outcome():
    """The parametrised cases above, gathered: no rule has an unreachable outcome."""
    cases = {"1": CASES_1, "2": CASES_2, "3": CASES_3, "5": CASES_5, "6": CASES_6}
    for number, found in cases.items():
        assert {outcome for _, outcome in found} == set(OUTCOMES), number


def test_a_verdict_that_changes_under_the_attentive_probe_says_so():
    rows, summaries = study(probe=early(0.10, -0.10))
    rows += [{**r, "metric": "attentive_probe_acc", "value": 0.6 + jitter(0.002, r["run"], r["dataset"], r["block"])}
             for r in rows if r["metric"] == "probe_acc" and r["regime"] != "random"]
    findings = measure_findings(rows, summaries)
    assert findings["2"]["verdict"] == REPRODUCED and findings["2"]["attentive"]["verdict"] == NOT_REPRODUCED
    assert "| reproduced (attentive probe: not reproduced) |" in findings_markdown(findings)
    assert "attentive" not in findings["3"]  # CKA is not a probe


def test_markdown_lists_every_finding_with_its_rule_and_parts():
    table = findings_markdown(measure_findings(*study(loss=LEARNS, probe=bw(0.598, 0.6))))
    assert sum(line.startswith("| ") for line in table.splitlines()) == 1 + 9
    assert "Holm" in table and "close to E2E: reproduced" in table
    assert "not reproduced (" not in table.split("| 1 |")[1].split("\n")[0]


def test_one_seed_says_so_instead_of_printing_nan():
    assert format_ci({"mean": 0.5, "low": float("nan"), "high": float("nan"), "n": 1}) == "0.500 (1 seed, no interval)"
    assert format_ci({"mean": 0.5, "low": 0.4, "high": 0.6, "n": 3}) == "0.500 [0.400, 0.600]"
