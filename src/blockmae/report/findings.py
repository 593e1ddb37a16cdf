"""The paper's six findings (docs/paper.md) and three beyond it (7: does late-block saturation survive a debiased
CKA, `report.saturation_finding`; 8: do blocks form interfaces, `report.stitching_finding`; 9: where does the
blockwise gap live, `report.gap_split`), each a rule over a study's tidy rows with four outcomes
(`report.verdicts`; docs/verdicts.md).

A finding is cut into parts (claims); each part compares cells (regime x K [x dataset]) by per-seed differences
with 95% t-intervals, paired by seed (runs of one seed share their initial weights and data order), or by
Welch's t against the random-init encoders (which have seeds of their own). "Larger", "earlier" and "grows" need
an interval clear of zero, "close" an equivalence (TOST) at a stated margin; counts of cells count only clear
cells; p-values are Holm-corrected over the cells of a part. The finding's verdict combines its parts
(`verdicts.combine`).

Probe accuracies are a dataset's mean over its targets, then the mean over datasets. Losses are the analysis's
held-out reconstruction rows on the pretraining data, so that every run is scored on the same clips and masks.
Findings that read probes are measured under the linear probe (the paper's) and, where its rows exist, again
under the attentive probe; a verdict that changes under it says so.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..eval.stats import seeds_to_exclude
from ..regimes import REFERENCE, SEQUENTIAL, blockwise_regimes
from .gap_split import gap_split_finding
from .saturation_finding import saturation_debiased
from .stitching_finding import stitching_finding
from .study_index import StudyIndex, paired_by_seed
from .verdicts import (CORRECTION, INCONCLUSIVE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, RHO_MARGIN, Difference,
                       combine, correlation, equivalence_vote, paired, vote, welch)

PROBE_MARGIN_PP = 2.0  # probe accuracy differences below this are "the same"
CKA_MARGIN = 0.01
OCCLUSION_MARGIN = 0.02
LOSS_MARGIN = 0.01  # of the copy predictor's loss (relative)
NO_ROOM_CKA = 0.98  # a random encoder's late CKA at or above this leaves CKA no room to tell regimes apart


def _settle(d: Difference) -> int | str | None:
    """Seeds at which the interval of these per-seed differences would exclude 0 (None: excluded already)."""
    if d.n < 2 or not d.values or d.low > 0 or d.high < 0:
        return None
    return seeds_to_exclude(d.values) or "more than 1000 (no measurable difference)"


def _pp(d: Difference) -> str:
    return f"{d.mean:+.1f} [{d.low:+.1f}, {d.high:+.1f}] pp" if d.n >= 2 else f"{d.mean:+.1f} pp (no interval)"


def _num(d: Difference, digits: int = 3) -> str:
    return (f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]" if d.n >= 2
            else f"{d.mean:+.{digits}f} (no interval)")


def _finding(parts: dict, rule: str, key: str, cells: dict, optional: tuple[str, ...] = (), **extra) -> dict:
    return {"verdict": combine(parts, optional),
            "parts": {name: {"verdict": o, "reason": r} for name, (o, r) in parts.items()},
            "rule": rule + f" Multiple comparisons: {CORRECTION}.", "key_numbers": key,
            "cells": {name: {k: d.as_dict() for k, d in c.items()} for name, c in cells.items()}, **extra}


def final_block(idx: StudyIndex, metric: str = "probe_acc") -> dict:
    """Finding 1: BW learns (beats the trivial predictors), lands close to E2E, and the gap grows with K."""
    datasets = idx.probe_datasets(metric)
    learned, gaps, settle = {}, {}, {}
    copy = idx.copy_loss()
    for K in idx.Ks:
        for regime in blockwise_regimes():
            if not idx.has(regime, K):
                continue
            loss = idx.loss(regime, K, K)
            if copy is not None and loss:
                learned[f"{regime}-K{K}"] = paired([copy - v for v in loss.values()], LOSS_MARGIN * copy)
            e2e, bw = (idx.over_datasets(r, K, metric, K, datasets) for r in (REFERENCE, regime))
            if e2e and bw:
                gaps[f"{regime}-K{K}"] = gap = paired([100 * d for d in paired_by_seed(e2e, bw)], PROBE_MARGIN_PP)
                if _settle(gap):
                    settle[f"gap {regime}-K{K} excludes 0"] = _settle(gap)
    floor = _random_floor(idx, metric, datasets)
    parts = {"learns": vote(learned, "above") if copy is not None else (NOT_MEASURED, "no trivial-predictor rows "
                                                                        "on the pretraining data")}
    parts["close to E2E"] = equivalence_vote(gaps)
    if gaps and floor[0] != REPRODUCED:
        parts["close to E2E"] = (INCONCLUSIVE, f"E2E is not shown to clear the random-init floor ({floor[1]}), "
                                               "so being close to it says nothing")
    grows = {}
    if len(idx.Ks) >= 2:
        lo, hi = idx.Ks[0], idx.Ks[-1]
        for regime in blockwise_regimes():
            if f"{regime}-K{lo}" in gaps and f"{regime}-K{hi}" in gaps:
                grows[regime] = welch(gaps[f"{regime}-K{hi}"].values, gaps[f"{regime}-K{lo}"].values, PROBE_MARGIN_PP)
    parts["grows with K"] = vote(grows, "above") if grows else (NOT_MEASURED, "needs two K")
    key = "; ".join(f"gap {k}: {_pp(v)}" for k, v in gaps.items()) + f"; E2E minus random floor: {floor[1]}"
    rule = (f"learns: the top stage's held-out loss is below the best trivial predictor's (margin {LOSS_MARGIN:.0%} "
            f"of it); close to E2E: E2E minus BW final-block probe equivalent to 0 within +-{PROBE_MARGIN_PP:g} pp "
            "(TOST), and only if E2E clears the random-init floor (Welch interval above 0); grows with K (optional: "
            "needs two K): the gap at the larger K minus the smaller, interval above 0.")
    return _finding(parts, rule, key, {"learns": learned, "gap_e2e_minus_bw_pp": gaps, "grows": grows},
                    optional=("grows with K",), seeds_to_settle=settle)


def _random_floor(idx: StudyIndex, metric: str, datasets: list[str]) -> tuple[str, str]:
    """Does E2E's final-block probe (at every K) clear the random-init encoders'? (outcome, numbers)"""
    per_dataset = [idx.random.get((d, metric, "mean"), {}) for d in datasets]
    runs = set.intersection(*(set(p) for p in per_dataset)) if per_dataset and all(per_dataset) else set()
    if not runs:
        return NOT_MEASURED, "no random-init rows"
    floor = [100 * float(np.mean([p[r] for p in per_dataset])) for r in runs]
    cells = {f"K{K}": welch([100 * v for v in idx.over_datasets(REFERENCE, K, metric, K, datasets).values()], floor,
                            PROBE_MARGIN_PP) for K in idx.Ks if idx.has(REFERENCE, K)}
    text = "; ".join(f"{k} {_pp(d)} ({len(floor)} random encoders)" for k, d in cells.items())
    return vote(cells, "above")[0] if cells else NOT_MEASURED, text or "no E2E runs"


def early_decodability(idx: StudyIndex, metric: str = "probe_acc") -> dict:
    """Finding 2: higher-level structure is decodable earlier under BW (block 1), then E2E overtakes at the top."""
    earlier, later = {}, {}
    for K in idx.Ks:
        for dataset in idx.probe_datasets(metric):
            for regime in blockwise_regimes():
                e2e1, bw1 = idx.get(REFERENCE, K, dataset, metric, 1), idx.get(regime, K, dataset, metric, 1)
                if e2e1 and bw1:
                    cell = f"{regime}-K{K}/{dataset}"
                    earlier[cell] = paired([100 * d for d in paired_by_seed(bw1, e2e1)], PROBE_MARGIN_PP)
                    later[cell] = paired([100 * d for d in paired_by_seed(idx.get(REFERENCE, K, dataset, metric, K),
                                                                   idx.get(regime, K, dataset, metric, K))],
                                         PROBE_MARGIN_PP)
    parts = {"earlier under BW": vote(earlier, "above")}
    ahead = {c: later[c] for c, d in earlier.items() if d.kind == "above"}
    parts["E2E overtakes at the top"] = (vote(ahead, "above") if ahead else
                                         (NOT_MEASURED, "no cell where BW is clearly ahead at block 1"))
    key = (f"block 1, BW minus E2E: {parts['earlier under BW'][1]}; top block, E2E minus BW where BW led: "
           f"{parts['E2E overtakes at the top'][1]}")
    rule = ("earlier: per (regime, K, dataset) cell, BW minus E2E at block 1, interval above 0 in at least half of "
            "the cells and below in none (not reproduced: at least half below or equivalent within "
            f"+-{PROBE_MARGIN_PP:g} pp, none above); overtakes: in the cells where BW led, E2E minus BW at the top "
            "block by the same rule.")
    # overtaking is measured wherever BW leads; without a lead there is nothing to overtake
    return _finding(parts, rule, key, {"earlier": earlier, "overtaken": ahead}, optional=("E2E overtakes at the top",))


def late_saturation(idx: StudyIndex) -> dict:
    """Finding 3: BW's late consecutive-block CKA is above E2E's, and its per-block losses flatter."""
    cka, flat = {}, {}
    for K in idx.Ks:
        late = range(K // 2 + 1, K)  # pairs (b, b+1) in the second half
        e2e_cka = _late_cka(idx, REFERENCE, K, late)
        for regime in blockwise_regimes():
            bw_cka = _late_cka(idx, regime, K, late)
            if e2e_cka and bw_cka:
                cka[f"{regime}-K{K}"] = paired(paired_by_seed(bw_cka, e2e_cka), CKA_MARGIN)
            drops = [_late_drop(idx, r, K) for r in (REFERENCE, regime)]
            if all(drops):
                flat[f"{regime}-K{K}"] = paired(paired_by_seed(*drops), LOSS_MARGIN)
    random = [v for d in idx.datasets for v in idx.random_cka.get(d, {}).values()]
    parts = {"late CKA higher under BW": vote(cka, "above")}
    if cka and random and float(np.mean(random)) >= NO_ROOM_CKA:
        parts["late CKA higher under BW"] = (INCONCLUSIVE, f"no room: a random-init encoder's last-pair CKA is "
                                                           f"already {np.mean(random):.3f}")
    parts["flatter BW losses"] = vote(flat, "above") if flat else (NOT_MEASURED, "no per-stage held-out losses on "
                                                                                 "the pretraining data")
    key = "; ".join(f"late CKA {k} minus E2E {_num(d)}" for k, d in cka.items())
    if random:
        key += f"; random-init last-pair CKA {np.mean(random):.3f}"
    rule = ("late CKA: the mean linear CKA of consecutive pairs in the second half of the blocks, BW minus E2E per "
            f"(regime, K), interval above 0 (equivalence margin {CKA_MARGIN:g}), inconclusive when a random-init "
            f"encoder already scores >= {NO_ROOM_CKA:g}; flatter losses: E2E's relative loss drop from the middle "
            f"block to the top minus BW's, interval above 0 (margin {LOSS_MARGIN:g}).")
    return _finding(parts, rule, key, {"late_cka": cka, "flatter": flat})


def _late_cka(idx: StudyIndex, regime, K, late) -> dict:
    per_seed = defaultdict(list)
    for dataset in idx.datasets:
        for b in late:
            for seed, v in idx.consecutive.get(("cka_linear", regime, K, dataset, b), {}).items():
                per_seed[seed].append(v)
    return {seed: float(np.mean(v)) for seed, v in per_seed.items()}


def _late_drop(idx: StudyIndex, regime, K) -> dict:
    """{seed: (loss at the middle block - loss at the top) / loss at the middle block}."""
    mid, top = idx.loss(regime, K, max(1, K // 2)), idx.loss(regime, K, K)
    return {s: (mid[s] - top[s]) / mid[s] for s in set(mid) & set(top)}


def cka_vs_gain(idx: StudyIndex) -> dict:
    """Finding 4: lower CKA between consecutive blocks goes with larger retrieval-mAP gains, per dataset."""
    from scipy.stats import spearmanr

    cells, numbers = {}, []
    for dataset in idx.datasets:
        xs, ys = [], []
        for (metric, regime, K, d, b), seeds in idx.consecutive.items():
            if metric != "cka_linear" or d != dataset:
                continue
            before, after = idx.get(regime, K, d, "retrieval_map", b), idx.get(regime, K, d, "retrieval_map", b + 1)
            for seed, cka in seeds.items():
                if seed in before and seed in after:
                    xs.append(cka)
                    ys.append(after[seed] - before[seed])
        if len(xs) >= 4 and np.ptp(xs) > 0 and np.ptp(ys) > 0:
            rho = float(spearmanr(xs, ys)[0])
            cells[dataset] = correlation(rho, len(xs))
            numbers.append(f"{dataset} rho {rho:+.2f} ({len(xs)} pairs)")
    parts = {"negative within each dataset": vote(cells, "below")}
    signs = {np.sign(d.mean) for d in cells.values() if d.kind in ("above", "below")}
    key = "; ".join(numbers) + ("; the datasets' signs disagree" if len(signs) > 1 else "")
    rule = ("per dataset, Spearman's rho between a consecutive pair's linear CKA and the retrieval-mAP gain over "
            "every (run, pair); rho on Fisher's z scale (standard error 1.06/sqrt(n-3)); reproduced if rho is "
            f"clearly negative in at least half of the datasets and positive in none; not reproduced if clearly "
            f"positive or equivalent to 0 (|rho| < {RHO_MARGIN:g}) in at least half and negative in none. Pairs "
            "within a dataset share runs, so the intervals are approximate.")
    return _finding(parts, rule, key, {"rho_z": cells})


def token_shifts(idx: StudyIndex) -> dict:
    """Finding 5: BW's block-1 token similarity is above E2E's, and BW's occlusion drop grows with depth."""
    similar, grows = {}, {}
    for K in idx.Ks:
        for dataset in idx.datasets:
            e2e = idx.get(REFERENCE, K, dataset, "token_similarity", 1)
            for regime in blockwise_regimes():
                cell = f"{regime}-K{K}/{dataset}"
                bw = idx.get(regime, K, dataset, "token_similarity", 1)
                if e2e and bw:
                    similar[cell] = paired(paired_by_seed(bw, e2e), CKA_MARGIN)
                first, last = (idx.get(regime, K, dataset, "occlusion_drop", b) for b in (1, K))
                if first and last:
                    grows[cell] = paired(paired_by_seed(last, first), OCCLUSION_MARGIN)
    parts = {"higher block-1 token similarity": vote(similar, "above"),
             "occlusion drop grows with depth": vote(grows, "above")}
    key = "; ".join(f"{name}: {reason}" for name, (_, reason) in parts.items())
    rule = ("token similarity: BW minus E2E at block 1 per (regime, K, dataset), interval above 0 in at least half "
            f"of the cells and below in none (margin {CKA_MARGIN:g}); occlusion: BW's occlusion drop at the top "
            f"block minus block 1, by the same rule (margin {OCCLUSION_MARGIN:g}).")
    return _finding(parts, rule, key, {"token_similarity": similar, "occlusion_growth": grows})



def recon_vs_representation(idx: StudyIndex, summaries: dict, metric: str = "probe_acc") -> dict:
    """Finding 6: sequential BW, given the full schedule per stage, reaches a lower loss than E2E but probes worse."""
    lower, worse, untested = {}, {}, []
    copy = idx.copy_loss()
    datasets = idx.probe_datasets(metric)
    for K in idx.Ks:
        if not (idx.has(REFERENCE, K) and idx.has(SEQUENTIAL, K)):
            continue
        if not _per_stage_budget(summaries, idx, K):
            untested.append(f"K{K}")
            continue
        seq, e2e = idx.loss(SEQUENTIAL, K, K), idx.loss(REFERENCE, K, K)
        if seq and e2e and copy is not None:
            lower[f"K{K}"] = paired(paired_by_seed(seq, e2e), LOSS_MARGIN * copy)
        probes = [idx.over_datasets(r, K, metric, K, datasets) for r in (SEQUENTIAL, REFERENCE)]
        if all(probes):
            worse[f"K{K}"] = paired([100 * d for d in paired_by_seed(*probes)], PROBE_MARGIN_PP)
    if untested and not (lower or worse):
        why = (f"not tested at {', '.join(untested)}: sequential had E2E's total steps (each stage 1/K of them); "
               "set the study's sequential_budget to per-stage")
        parts = {"lower loss": (NOT_MEASURED, why), "worse probe": (NOT_MEASURED, why)}
    else:
        parts = {"lower loss": vote(lower, "below"), "worse probe": vote(worse, "below")}
    key = "; ".join([f"loss seq minus E2E {k}: {_num(d, 4)}" for k, d in lower.items()] +
                    [f"probe seq minus E2E {k}: {_pp(d)}" for k, d in worse.items()]) or parts["lower loss"][1]
    rule = ("only where sequential gave each stage E2E's whole schedule (its steps >= K x E2E's; 'not measured' "
            "otherwise): lower loss: sequential minus E2E top-stage held-out loss per K, interval below 0 "
            f"(margin {LOSS_MARGIN:.0%} of the copy's loss); worse probe: sequential minus E2E final-block probe, "
            f"interval below 0 (margin {PROBE_MARGIN_PP:g} pp).")
    settle = {f"{k} sequential vs e2e {what}": n for what, cells in (("loss", lower), ("probe", worse))
              for k, d in cells.items() if (n := _settle(d))}
    return _finding(parts, rule, key, {"lower_loss": lower, "worse_probe": worse}, seeds_to_settle=settle)


def _per_stage_budget(summaries: dict, idx: StudyIndex, K: int) -> bool:
    """Did every sequential run at K train each stage for as many steps as E2E trained in all?"""
    steps = {r: [s.get("steps", 0) for name, s in summaries.items()
                 if s.get("regime") == r and idx.K_of_run.get(name) == K] for r in (SEQUENTIAL, REFERENCE)}
    return bool(steps[SEQUENTIAL] and steps[REFERENCE]) and min(steps[SEQUENTIAL]) >= K * max(steps[REFERENCE])


def _outcome_of(finding: dict, mapping: dict[str, str]) -> dict:
    """A finding measured in its own module, its verdict mapped onto the four outcomes (its own word kept)."""
    detail = finding["verdict"]
    verdict = next((o for word, o in mapping.items() if detail.startswith(word)), INCONCLUSIVE)
    return {**finding, "verdict": verdict, "parts": {"outcome": {"verdict": verdict, "reason": detail}}}


FINDINGS = [
    ("1", "BWSSL converges and lands close to E2E; the gap grows with K", "final_block"),
    ("2", "Higher-level structure is decodable earlier under BWSSL; E2E overtakes later", "early_decodability"),
    ("3", "Late-block saturation: flat BW losses, high late consecutive-block CKA", "late_saturation"),
    ("4", "Lower consecutive-block CKA goes with larger retrieval-mAP gains", "cka_vs_gain"),
    ("5", "Token-level shifts: early token similarity, occlusion drop with depth", "token_shifts"),
    ("6", "Lower reconstruction loss does not imply better representations", "recon_vs_representation"),
    ("7", "Beyond the paper: late-block saturation survives debiasing", "saturation_debiased"),
    ("8", "Beyond the paper: blockwise and E2E blocks form different interfaces (stitching)", "interfaces"),
    ("9", "Beyond the paper: the blockwise gap lives in the upper blocks (frozen-base continuation)", "gap_split"),
]
PROBE_FINDINGS = {"final_block", "early_decodability", "recon_vs_representation"}


def measure_findings(rows: list[dict], summaries: dict) -> dict:
    """{finding number: {title, verdict, parts, rule, key_numbers, ...}} from a study's rows and run summaries."""
    idx = StudyIndex(rows, summaries)

    def measure(key: str, metric: str = "probe_acc") -> dict:
        return {"final_block": lambda: final_block(idx, metric),
                "early_decodability": lambda: early_decodability(idx, metric),
                "late_saturation": lambda: late_saturation(idx), "cka_vs_gain": lambda: cka_vs_gain(idx),
                "token_shifts": lambda: token_shifts(idx),
                "recon_vs_representation": lambda: recon_vs_representation(idx, summaries, metric),
                "saturation_debiased": lambda: saturation_debiased(idx),
                "interfaces": lambda: _outcome_of(stitching_finding(rows), {
                    "differ": REPRODUCED, "same": NOT_REPRODUCED, "not measured": NOT_MEASURED}),
                "gap_split": lambda: _outcome_of(gap_split_finding(rows), {
                    "upper blocks": REPRODUCED, "lower blocks": NOT_REPRODUCED, "extra steps": NOT_REPRODUCED,
                    "not measured": NOT_MEASURED})}[key]()

    attentive = any(r.get("metric") == "attentive_probe_acc" for r in rows)
    out = {}
    for number, title, key in FINDINGS:
        out[number] = {"title": title, **measure(key)}
        if attentive and key in PROBE_FINDINGS:
            other = measure(key, "attentive_probe_acc")
            out[number]["attentive"] = {"verdict": other["verdict"], "parts": other["parts"],
                                        "key_numbers": other["key_numbers"]}
    return out


def findings_markdown(findings: dict) -> str:
    lines = ["| # | finding | verdict | parts | key numbers | seeds that would settle an open comparison |",
             "|---|---|---|---|---|---|"]
    for number, f in findings.items():
        verdict = f["verdict"]
        if "attentive" in f and f["attentive"]["verdict"] != verdict:
            verdict += f" (attentive probe: {f['attentive']['verdict']})"
        parts = "; ".join(f"{name}: {p['verdict']} ({p['reason']})" for name, p in f["parts"].items())
        settle = "; ".join(f"{k}: {n}" for k, n in f.get("seeds_to_settle", {}).items()) or "-"
        lines.append(f"| {number} | {f['title']} | {verdict} | {parts} | {f['key_numbers'] or '-'} | {settle} |")
    lines += ["", "Rules (95% t-intervals over seeds; the outcomes: reproduced, not reproduced, inconclusive, not "
                  "measured). A finding is not reproduced if one of its parts is; not measured if a part it needs has "
                  "no data; reproduced if every part is; else inconclusive.", ""]
    lines += [f"- **{number}**: {f['rule']}" for number, f in findings.items()]
    return "\n".join(lines) + "\n\nSeeds that would settle: the number of seeds at which the 95% t-interval of " \
        "the per-seed difference would exclude zero, if its mean and spread stayed as measured.\n"
