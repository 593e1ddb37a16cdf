"""The findings' rules on synthetic rows built to satisfy them, and to contradict them."""

import pytest

from blockmae.analysis.findings import findings_markdown, measure_findings

K, SEEDS, DATASETS = 4, (0, 1, 2), ("digits", "gratings")


def synthetic(paper_like: bool):
    """Rows and summaries of an E2E/simultaneous/sequential K=4 study with three seeds.

    paper_like=True follows the paper: BW ahead at block 1, E2E ahead at the top by a little,
    late BW blocks nearly identical (high CKA, flat losses), occlusion drop growing with depth,
    sequential with the lowest loss. paper_like=False reverses every one of those.
    """
    rows, summaries = [], {}
    sign = 1 if paper_like else -1
    for regime in ("e2e", "simultaneous", "sequential"):
        bw = regime != "e2e"
        for seed in SEEDS:
            noise = 0.001 * seed
            run = f"{regime}-K{K}-s{seed}"
            meta = {"run": run, "regime": regime, "model": "vit-tiny", "K": K, "seed": seed, "split": None,
                    "layer": None, "step": None}
            for dataset in DATASETS:
                for b in range(1, K + 1):
                    if bw:  # early lead, then a plateau
                        acc = 0.6 + sign * 0.05 + 0.01 * b
                    elif paper_like:  # steady climb that ends above BW
                        acc = 0.6 + 0.06 * b
                    else:  # ahead early, then declining below BW
                        acc = 0.7 - 0.03 * b
                    # BW gains little mAP per block; paper-like, its blocks also change least (high CKA).
                    mAP = 0.2 + (0.01 if bw else 0.05) * b
                    cka_next = (0.99 if bw else 0.95) if paper_like else (0.90 if bw else 0.99)
                    common = {**meta, "dataset": dataset, "block": b, "target": "mean"}
                    rows += [{**common, "metric": "probe_acc", "value": acc + noise},
                             {**common, "metric": "retrieval_map", "value": mAP + noise},
                             {**common, "metric": "token_similarity",
                              "value": (0.8 if bw == paper_like else 0.5) + noise},
                             {**common, "metric": "occlusion_drop", "value": sign * 0.01 * b + noise}]
                    if b < K:
                        rows.append({**common, "metric": "cka_linear", "block2": b + 1,
                                     "value": cka_next - 0.01 * b * (not bw) + noise})
            top = {"e2e": 0.20, "simultaneous": 0.205, "sequential": 0.19 if paper_like else 0.21}[regime]
            losses = [top + (0.0 if bw else 0.02 * (K - b)) for b in range(1, K + 1)]
            summaries[run] = {"regime": regime, "partition": [3] * K, "first_losses": [1.0] * K,
                              "last_losses": [x + 0.01 for x in losses],
                              "held_out": {"losses": [x + noise for x in losses]}}
    rows.append({"run": "random", "regime": "random", "model": "vit-tiny", "K": K, "seed": 0, "dataset": "digits",
                 "split": None, "block": None, "layer": 1, "metric": "probe_acc", "target": "mean", "value": 0.3,
                 "step": None})
    return rows, summaries


def test_paper_like_rows_reproduce_the_findings():
    findings = measure_findings(*synthetic(True))
    assert list(findings) == ["1", "2", "3", "4", "5", "6", "7", "8", "9"]
    verdicts = {n: f["verdict"] for n, f in findings.items() if n < "8"}
    assert findings["8"]["verdict"].startswith("not measured") and findings["9"]["verdict"].startswith("not measured")
    # Finding 1 needs the gap to grow with K, which one K cannot show; 7 needs debiased CKA rows.
    assert verdicts == {"1": "inconclusive", "2": "reproduced", "3": "reproduced", "4": "reproduced",
                        "5": "reproduced", "6": "reproduced", "7": "inconclusive"}
    gap = findings["1"]["gap_e2e_minus_bw_pp"]["simultaneous-K4"]
    # E2E 0.6 + 0.24 vs BW 0.65 + 0.04 at the top: 15 pp, the same for every seed.
    assert gap["mean"] == pytest.approx(15.0)
    assert gap["n"] == len(SEEDS)
    assert findings["2"]["by_run"]["simultaneous-K4/digits"]["e2e_first_ahead_at_block"] == 2
    assert findings["4"]["spearman_rho"] < 0
    table = findings_markdown(findings)
    assert sum(line.startswith("|") for line in table.splitlines()) == 2 + 9 and "| 9 |" in table
    assert "no debiased CKA rows" in table


def test_contrary_rows_do_not_reproduce_them():
    findings = measure_findings(*synthetic(False))
    verdicts = {n: f["verdict"] for n, f in findings.items()}
    assert verdicts["2"] == "not reproduced"
    assert verdicts["3"] == "not reproduced"
    assert verdicts["5"] == "not reproduced"
    assert verdicts["6"] == "not reproduced"
    assert verdicts["4"] == "not reproduced" and findings["4"]["spearman_rho"] > 0
    # E2E is 1 pp below BW at the top for every seed: a negative gap beyond its interval.
    assert verdicts["1"] == "not reproduced"


def test_an_open_gap_says_how_many_seeds_would_settle_it():
    from blockmae.eval.stats import seeds_to_exclude

    rows, summaries = synthetic(True)
    offsets = [0.03, -0.01, 0.02]  # E2E minus simultaneous at the top, per seed: an interval that spans 0
    top = {(r["seed"], r["dataset"]): r["value"] for r in rows
           if r["regime"] == "simultaneous" and r["metric"] == "probe_acc" and r["block"] == K}
    for r in rows:
        if r["regime"] == "e2e" and r["metric"] == "probe_acc" and r["block"] == K:
            r["value"] = top[(r["seed"], r["dataset"])] + offsets[SEEDS.index(r["seed"])]
    settle = measure_findings(rows, summaries)["1"]["seeds_to_settle"]
    assert settle["gap simultaneous-K4 excludes 0"] == seeds_to_exclude(offsets) > len(SEEDS)


def test_one_seed_says_so_instead_of_printing_nan():
    from blockmae.analysis.findings import format_ci

    assert format_ci({"mean": 0.5, "low": float("nan"), "high": float("nan"), "n": 1}) == "0.500 (1 seed, no interval)"
    assert format_ci({"mean": 0.5, "low": 0.4, "high": 0.6, "n": 3}) == "0.500 [0.400, 0.600]"


def with_debiased_cka(drop: float, paper_like: bool = True):
    """The synthetic study with a debiased linear CKA row beside every consecutive-block one, `drop` below it."""
    rows, summaries = synthetic(paper_like)
    rows += [{**r, "metric": "cka_linear_debiased", "value": r["value"] - drop} for r in rows
             if r["metric"] == "cka_linear"]
    return rows, summaries


@pytest.mark.parametrize("drop, verdict", [(0.01, "survives"), (0.06, "inconclusive"), (0.15, "artefact")])
def test_saturation_after_debiasing(drop, verdict):
    """Paper-like: BW's last pair has plain CKA 0.99 (+ 0.001 x seed), E2E's 0.95 - 0.03 = 0.92 (not a plateau).
    Debiasing takes `drop` off: 0.98 still saturated, 0.93 between the thresholds, 0.84 below 0.90."""
    finding = measure_findings(*with_debiased_cka(drop))["7"]
    assert finding["verdict"] == verdict
    assert finding["saturated"] == ["simultaneous-K4", "sequential-K4"]
    cell = finding["by_run"]["simultaneous-K4"]
    assert cell["plain"]["mean"] == pytest.approx(0.99 + 0.001)  # seeds 0, 1, 2: noise 0.001 on average
    assert cell["debiased"]["mean"] == pytest.approx(0.99 + 0.001 - drop)
    assert cell["plain_minus_debiased"]["values"] == pytest.approx([drop] * len(SEEDS))
    assert finding["by_run"]["e2e-K4"]["plain"]["mean"] == pytest.approx(0.92 + 0.001)
    assert "0.95" in finding["rule"] and "0.9" in finding["rule"]


def test_no_plateau_no_verdict():
    """Contrary rows: BW's late CKA is 0.90, E2E's 0.99 - 0.03 = 0.96 (a plateau) that debiasing keeps at 0.95."""
    finding = measure_findings(*with_debiased_cka(0.01, paper_like=False))["7"]
    assert finding["saturated"] == ["e2e-K4"] and finding["verdict"] == "survives"
    rows, summaries = with_debiased_cka(0.0, paper_like=False)
    for r in rows:
        if r["metric"] == "cka_linear" and r["regime"] == "e2e":
            r["value"] = 0.5  # nothing saturated: nothing to test
    assert measure_findings(rows, summaries)["7"]["verdict"] == "inconclusive"
