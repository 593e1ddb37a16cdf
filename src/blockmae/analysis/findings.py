"""The paper's six findings (docs/paper.md), and tests of its explanations beyond it (7: does late-block
saturation survive a debiased CKA? 8: do blocks form interfaces, `analysis.interfaces`; 9: where does the
blockwise gap live, `analysis.gap_split`), measured on a study's tidy rows.

Every number is a mean over seeds with a 95% t-interval (`eval.stats.mean_ci`); per-seed values are kept.
"Blockwise" (BW) means the regimes `blockmae.regimes` marks blockwise (simultaneous, sequential). A run's K is
the one its rows carry; run summaries are matched to it by run name. Probe accuracies are the mean over a
dataset's targets. A finding gets a verdict by the explicit rule written next to it, and "inconclusive"
where the intervals overlap in the way that matters.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ..eval.stats import mean_ci, seeds_to_exclude
from ..regimes import blockwise_regimes
from .gap_split import gap_split_finding
from .interfaces import stitching_finding
from .rows import datasets_of, is_pair


def _ci(values) -> dict:
    values = [float(v) for v in values]
    mean, low, high = mean_ci(values)
    return {"mean": mean, "low": low, "high": high, "n": len(values), "values": values}


def _settle(values) -> int | str | None:
    """Seeds at which the interval of these per-seed values would exclude 0 (None: excluded already)."""
    values = list(values)
    if len(values) < 2:
        return None  # no spread measured: nothing to extrapolate from
    _, low, high = mean_ci(values)
    if low > 0 or high < 0:
        return None
    return seeds_to_exclude(values) or "more than 1000 (no measurable difference)"


def _paired(a: dict, b: dict) -> list[float]:
    """Per-seed differences a - b over the seeds both have ({seed: value} dicts)."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def _separated(a: dict, b: dict) -> bool:
    """True when the intervals do not overlap (a clear difference at this number of seeds)."""
    return a["low"] > b["high"] or b["low"] > a["high"]


class StudyIndex:
    """The trained runs' final-model block rows: (regime, K, dataset, metric, target, block) -> {seed: value}, and
    each run's K (the one its rows carry, which the run summaries are matched by)."""

    def __init__(self, rows: list[dict]):
        self.values = defaultdict(dict)
        self.pairs = defaultdict(dict)  # consecutive-block CKA: (regime, K, dataset, block) -> {seed: value}
        self.consecutive = defaultdict(dict)  # any pair metric: (metric, regime, K, dataset, block) -> {seed: value}
        self.K_of_run = {r["run"]: r["K"] for r in rows}
        kept = [r for r in rows if r.get("step") is None and r["block"] is not None and r["regime"] != "random"]
        self.datasets = datasets_of(kept)
        self.Ks = sorted({r["K"] for r in kept})
        for r in kept:
            if is_pair(r):
                if r.get("block2") == r["block"] + 1 and r.get("run2") is None:
                    key = (r["regime"], r["K"], r["dataset"], r["block"])
                    self.consecutive[(r["metric"], *key)][r["seed"]] = r["value"]
                    if r["metric"] == "cka_linear":
                        self.pairs[key][r["seed"]] = r["value"]
                continue
            self.values[(r["regime"], r["K"], r["dataset"], r["metric"], r["target"], r["block"])][r["seed"]] = r["value"]

    def get(self, regime, K, dataset, metric, block, target="mean") -> dict:
        return self.values.get((regime, K, dataset, metric, target, block), {})

    def summaries_of(self, summaries: dict, regime: str, K: int) -> dict[str, dict]:
        """The run summaries (summary.json by run name) of the runs of (regime, K)."""
        return {name: s for name, s in summaries.items() if s["regime"] == regime and self.K_of_run.get(name) == K}


def _final_probe(idx: StudyIndex, regime, K, dataset) -> dict:
    return idx.get(regime, K, dataset, "probe_acc", K)


def final_block(idx: StudyIndex, summaries: dict) -> dict:
    """Finding 1: BW converges and lands close to E2E; the gap grows with K."""
    blockwise = blockwise_regimes()
    table, gaps = {}, {}
    for K in idx.Ks:
        for regime in ("e2e",) + blockwise:
            for dataset in idx.datasets:
                seeds = _final_probe(idx, regime, K, dataset)
                if seeds:
                    table[f"{regime}-K{K}/{dataset}"] = _ci(seeds.values())
            losses = [s["held_out"]["losses"][-1] for s in idx.summaries_of(summaries, regime, K).values()]
            if losses:
                table[f"{regime}-K{K}/held_out_loss_top"] = _ci(losses)
        for regime in blockwise:
            per_seed = defaultdict(list)  # seed -> gap per dataset, averaged over datasets
            for dataset in idx.datasets:
                e2e, bw = _final_probe(idx, "e2e", K, dataset), _final_probe(idx, regime, K, dataset)
                for seed in set(e2e) & set(bw):
                    per_seed[seed].append(e2e[seed] - bw[seed])
            if per_seed:
                gaps[f"{regime}-K{K}"] = _ci([np.mean(v) for v in per_seed.values()])
    converged = all(s["first_losses"][-1] > s["last_losses"][-1] for s in summaries.values()
                    if s["regime"] in blockwise)
    grows = {}
    if len(idx.Ks) >= 2:
        lo, hi = idx.Ks[0], idx.Ks[-1]
        for regime in blockwise:
            if f"{regime}-K{lo}" in gaps and f"{regime}-K{hi}" in gaps:
                grows[regime] = gaps[f"{regime}-K{hi}"]["mean"] > gaps[f"{regime}-K{lo}"]["mean"]
    settle = {k: _settle(v["values"]) for k, v in gaps.items()}
    return {"final_probe": table, "gap_e2e_minus_bw_pp": {k: _scale(v, 100) for k, v in gaps.items()},
            "seeds_to_settle": {f"gap {k} excludes 0": n for k, n in settle.items() if n is not None},
            "blockwise_losses_went_down": converged, "gap_grows_with_K": grows,
            "rule": "reproduced if every blockwise run's top loss went down, every gap is under 5 pp, and the gap "
                    "is larger at the larger K for both regimes; not reproduced if a gap is negative beyond its "
                    "interval or shrinks with K for both regimes; else inconclusive",
            "verdict": _verdict_1(converged, gaps, grows)}


def _scale(ci: dict, k: float) -> dict:
    return {**{key: ci[key] * k for key in ("mean", "low", "high")}, "n": ci["n"], "values": [v * k for v in ci["values"]]}


def _verdict_1(converged, gaps, grows) -> str:
    if not converged or not gaps:
        return "not reproduced"
    close = all(abs(g["mean"]) < 0.05 for g in gaps.values())
    if close and grows and all(grows.values()):
        return "reproduced"
    if any(g["high"] < 0 for g in gaps.values()) or (grows and not any(grows.values())):
        return "not reproduced"
    return "inconclusive"


def early_decodability(idx: StudyIndex) -> dict:
    """Finding 2: higher-level structure is decodable earlier under BW, then E2E overtakes."""
    out = {}
    for K in idx.Ks:
        for dataset in idx.datasets:
            e2e = [_ci(idx.get("e2e", K, dataset, "probe_acc", b).values()) for b in range(1, K + 1)]
            for regime in blockwise_regimes():
                bw = [_ci(idx.get(regime, K, dataset, "probe_acc", b).values()) for b in range(1, K + 1)]
                if not e2e[0]["n"] or not bw[0]["n"]:
                    continue
                overtakes = next((b for b in range(1, K + 1) if e2e[b - 1]["mean"] > bw[b - 1]["mean"]), None)
                out[f"{regime}-K{K}/{dataset}"] = {
                    "block1_bw": bw[0]["mean"], "block1_e2e": e2e[0]["mean"],
                    "block1_bw_minus_e2e_pp": 100 * (bw[0]["mean"] - e2e[0]["mean"]),
                    "block1_clear": _separated(bw[0], e2e[0]),
                    "e2e_first_ahead_at_block": overtakes,
                    "bw_by_block": [c["mean"] for c in bw], "e2e_by_block": [c["mean"] for c in e2e]}
    earlier = [v["block1_bw_minus_e2e_pp"] > 0 for v in out.values()]
    overtaken = [v["e2e_first_ahead_at_block"] is not None and v["e2e_first_ahead_at_block"] > 1 for v in out.values()]
    share_earlier = float(np.mean(earlier)) if earlier else 0.0
    share_overtaken = float(np.mean(overtaken)) if overtaken else 0.0
    verdict = ("reproduced" if share_earlier >= 0.75 and share_overtaken >= 0.5 else
               "not reproduced" if share_earlier <= 0.25 else "inconclusive")
    return {"by_run": out, "share_bw_ahead_at_block1": share_earlier, "share_e2e_overtakes_later": share_overtaken,
            "rule": "reproduced if BW is ahead at block 1 in >= 75% of (regime, K, dataset) cells and E2E then "
                    "overtakes at a later block in >= 50%; not reproduced if BW is ahead at block 1 in <= 25%",
            "verdict": verdict}


def late_saturation(idx: StudyIndex, summaries: dict) -> dict:
    """Finding 3: BW per-block losses are flat across depth; late consecutive-block CKA is higher for BW."""
    blockwise = blockwise_regimes()
    out = {}
    for K in idx.Ks:
        late = range(K // 2 + 1, K)  # pairs (b, b+1) in the second half
        for regime in ("e2e",) + blockwise:
            losses = [s["held_out"]["losses"] for s in idx.summaries_of(summaries, regime, K).values()]
            cka_seeds = defaultdict(list)
            for dataset in idx.datasets:
                for b in late:
                    for seed, v in idx.pairs.get((regime, K, dataset, b), {}).items():
                        cka_seeds[seed].append(v)
            if not losses:
                continue
            per_block = np.array(losses).mean(axis=0)
            # Flatness: how much the loss still falls from block 2 to the last block, relative to block 1 -> 2.
            drop_late = per_block[1] - per_block[-1]
            out[f"{regime}-K{K}"] = {"held_out_loss_by_block": per_block.tolist(),
                                     "late_drop": float(drop_late),
                                     "late_cka_by_seed": {seed: float(np.mean(v)) for seed, v in cka_seeds.items()},
                                     "late_consecutive_cka": _ci([np.mean(v) for v in cka_seeds.values()])
                                     if cka_seeds else None}
    wins, settle = [], {}
    for K in idx.Ks:
        e2e = out.get(f"e2e-K{K}", {}).get("late_consecutive_cka")
        for regime in blockwise:
            bw = out.get(f"{regime}-K{K}", {}).get("late_consecutive_cka")
            if e2e and bw:
                wins.append(bw["mean"] > e2e["mean"])
                n = _settle(_paired(out[f"{regime}-K{K}"]["late_cka_by_seed"], out[f"e2e-K{K}"]["late_cka_by_seed"]))
                if n is not None:
                    settle[f"late CKA {regime}-K{K} vs e2e"] = n
    verdict = "reproduced" if wins and all(wins) else "not reproduced" if wins and not any(wins) else "inconclusive"
    return {"by_run": out, "bw_late_cka_higher": wins, "seeds_to_settle": settle,
            "rule": "reproduced if the late consecutive-block linear CKA of every BW (regime, K) is above E2E's at "
                    "the same K; not reproduced if it is below in every case",
            "verdict": verdict}


def cka_vs_gain(idx: StudyIndex) -> dict:
    """Finding 4: lower CKA between consecutive blocks goes with larger retrieval-mAP gains."""
    xs, ys = [], []
    for (regime, K, dataset, b), seeds in idx.pairs.items():
        before = idx.get(regime, K, dataset, "retrieval_map", b)
        after = idx.get(regime, K, dataset, "retrieval_map", b + 1)
        for seed, cka in seeds.items():
            if seed in before and seed in after:
                xs.append(cka)
                ys.append(after[seed] - before[seed])
    if len(xs) < 3:
        return {"points": len(xs), "verdict": "inconclusive", "rule": "needs at least 3 block pairs"}
    from scipy.stats import spearmanr

    rho, p = spearmanr(xs, ys)
    verdict = "reproduced" if rho < 0 and p < 0.05 else "not reproduced" if rho > 0 and p < 0.05 else "inconclusive"
    return {"points": len(xs), "spearman_rho": float(rho), "p_value": float(p),
            "rule": "Spearman correlation over every (run, dataset, consecutive block pair) of linear CKA against "
                    "the retrieval-mAP gain: reproduced if negative with p < 0.05, not reproduced if positive with "
                    "p < 0.05, else inconclusive",
            "verdict": verdict}


def token_shifts(idx: StudyIndex) -> dict:
    """Finding 5: higher early token similarity under BW; occlusion drop grows with depth."""
    out, early_higher, grows = {}, [], []
    for K in idx.Ks:
        for dataset in idx.datasets:
            e2e = _ci(idx.get("e2e", K, dataset, "token_similarity", 1).values())
            for regime in ("e2e",) + blockwise_regimes():
                occ = [_ci(idx.get(regime, K, dataset, "occlusion_drop", b).values())["mean"] if
                       idx.get(regime, K, dataset, "occlusion_drop", b) else None for b in range(1, K + 1)]
                cell = {"occlusion_drop_by_block": occ}
                if regime != "e2e":
                    bw = _ci(idx.get(regime, K, dataset, "token_similarity", 1).values())
                    if bw["n"] and e2e["n"]:
                        cell |= {"token_similarity_block1": bw["mean"], "e2e_token_similarity_block1": e2e["mean"]}
                        early_higher.append(bw["mean"] > e2e["mean"])
                if occ[0] is not None and occ[-1] is not None:
                    grows.append(occ[-1] > occ[0])
                out[f"{regime}-K{K}/{dataset}"] = cell
    share_sim = float(np.mean(early_higher)) if early_higher else 0.0
    share_occ = float(np.mean(grows)) if grows else 0.0
    verdict = ("reproduced" if share_sim >= 0.75 and share_occ >= 0.75 else
               "not reproduced" if share_sim <= 0.25 and share_occ <= 0.25 else "inconclusive")
    return {"by_run": out, "share_bw_block1_token_similarity_higher": share_sim,
            "share_occlusion_drop_grows_with_depth": share_occ,
            "rule": "reproduced if BW block-1 token similarity is above E2E's in >= 75% of cells and the occlusion "
                    "drop at the last block exceeds block 1's in >= 75% of cells; not reproduced if both <= 25%",
            "verdict": verdict}


def recon_vs_representation(idx: StudyIndex, summaries: dict) -> dict:
    """Finding 6: sequential BW reaches a lower reconstruction loss than E2E but probes worse."""
    out, settle = {}, {}
    for K in idx.Ks:
        by_seed = {r: {s.get("seed", name): s["held_out"]["losses"][-1]
                       for name, s in idx.summaries_of(summaries, r, K).items()} for r in ("e2e", "sequential")}
        loss = {r: _ci(by_seed[r].values()) for r in ("e2e", "sequential")}
        if not loss["e2e"]["n"] or not loss["sequential"]["n"]:
            continue
        probe = {}
        for r in ("e2e", "sequential"):
            per_seed = defaultdict(list)
            for dataset in idx.datasets:
                for seed, v in _final_probe(idx, r, K, dataset).items():
                    per_seed[seed].append(v)
            probe[r] = _ci([np.mean(v) for v in per_seed.values()]) | {"seeds": list(per_seed)}
        for what, n in (("loss", _settle(_paired(by_seed["sequential"], by_seed["e2e"]))),
                        ("probe", _settle(_paired(*(dict(zip(probe[r]["seeds"], probe[r]["values"]))
                                                    for r in ("sequential", "e2e")))))):
            if n is not None:
                settle[f"K{K} sequential vs e2e {what}"] = n
        out[f"K{K}"] = {"held_out_loss_top": loss, "final_probe_mean_over_datasets": probe,
                        "seq_lower_loss": loss["sequential"]["mean"] < loss["e2e"]["mean"],
                        "seq_worse_probe": probe["sequential"]["mean"] < probe["e2e"]["mean"]}
    cells = list(out.values())
    both = [c["seq_lower_loss"] and c["seq_worse_probe"] for c in cells]
    verdict = ("reproduced" if cells and all(both) else
               "not reproduced" if cells and not any(c["seq_lower_loss"] for c in cells) else "inconclusive")
    return {"by_K": out, "seeds_to_settle": settle,
            "rule": "reproduced if, at every K, sequential's top held-out loss is below E2E's while its final-block "
                    "probe (mean over datasets) is below E2E's; not reproduced if sequential never reaches the "
                    "lower loss",
            "verdict": verdict}


SATURATED, ARTEFACT = 0.95, 0.90  # plain late CKA that counts as a plateau; debiased CKA that says it was bias


def _last_pair(idx: StudyIndex, metric: str, regime, K) -> dict:
    """{seed: the metric between blocks K-1 and K, mean over datasets}."""
    per_seed = defaultdict(list)
    for dataset in idx.datasets:
        for seed, v in idx.consecutive.get((metric, regime, K, dataset, K - 1), {}).items():
            per_seed[seed].append(v)
    return {seed: float(np.mean(v)) for seed, v in per_seed.items()}


def saturation_debiased(idx: StudyIndex) -> dict:
    """Finding 7 (beyond the paper): late-block saturation is not the plain CKA estimator's small-sample bias."""
    out = {}
    for K in (K for K in idx.Ks if K >= 2):
        for regime in ("e2e",) + blockwise_regimes():
            plain, debiased = (_last_pair(idx, m, regime, K) for m in ("cka_linear", "cka_linear_debiased"))
            if plain and debiased:
                out[f"{regime}-K{K}"] = {"plain": _ci(plain.values()), "debiased": _ci(debiased.values()),
                                         "plain_minus_debiased": _ci(_paired(plain, debiased))}
    saturated = [v for v in out.values() if v["plain"]["mean"] >= SATURATED]
    if saturated and any(v["debiased"]["mean"] < ARTEFACT for v in saturated):
        verdict = "artefact"
    elif saturated and all(v["debiased"]["mean"] >= SATURATED for v in saturated):
        verdict = "survives"
    else:
        verdict = "inconclusive"
    return {"by_run": out, "saturated": [k for k, v in out.items() if v["plain"]["mean"] >= SATURATED],
            "rule": f"per (regime, K), the linear CKA between blocks K-1 and K (mean over datasets, then over seeds), "
                    f"plain and debiased (unbiased HSIC); among the cells whose plain CKA is >= {SATURATED}: survives "
                    f"if every debiased CKA is still >= {SATURATED}, artefact if any falls below {ARTEFACT}, else "
                    f"inconclusive (also when no cell is saturated or debiased rows are missing)",
            "verdict": verdict}


FINDINGS = [
    ("1", "BWSSL converges and lands close to E2E; the gap grows with K", "final_block"),
    ("2", "Higher-level structure is decodable earlier under BWSSL; E2E overtakes later", "early_decodability"),
    ("3", "Late-block saturation: flat BW losses, high late consecutive-block CKA", "late_saturation"),
    ("4", "Lower consecutive-block CKA goes with larger retrieval-mAP gains", "cka_vs_gain"),
    ("5", "Token-level shifts: early token similarity, occlusion drop with depth", "token_shifts"),
    ("6", "Lower reconstruction loss does not imply better representations", "recon_vs_representation"),
    ("7", "Beyond the paper: late-block saturation survives debiasing", "saturation_debiased"),
    ("8", "Beyond the paper: blockwise and E2E blocks form different interfaces (stitching)", "interfaces"),
    ("9", "Beyond the paper: where the blockwise gap lives (frozen-base continuation)", "gap_split"),
]


def measure_findings(rows: list[dict], summaries: dict) -> dict:
    """{finding number: {title, verdict, rule, numbers...}} from a study's rows and run summaries."""
    idx = StudyIndex(rows)
    measured = {
        "final_block": final_block(idx, summaries), "early_decodability": early_decodability(idx),
        "late_saturation": late_saturation(idx, summaries), "cka_vs_gain": cka_vs_gain(idx),
        "token_shifts": token_shifts(idx), "recon_vs_representation": recon_vs_representation(idx, summaries),
        "saturation_debiased": saturation_debiased(idx), "interfaces": stitching_finding(rows),
        "gap_split": gap_split_finding(rows)}
    return {number: {"title": title, **measured[key]} for number, title, key in FINDINGS}


def findings_markdown(findings: dict) -> str:
    lines = ["| # | finding | verdict | key numbers | seeds that would settle an open comparison |",
             "|---|---|---|---|---|"]
    for number, f in findings.items():
        settle = "; ".join(f"{k}: {n}" for k, n in f.get("seeds_to_settle", {}).items()) or "-"
        lines.append(f"| {number} | {f['title']} | {f['verdict']} | {_key_numbers(number, f)} | {settle} |")
    return "\n".join(lines) + "\n\nSeeds that would settle: the number of seeds at which the 95% t-interval of " \
        "the per-seed difference would exclude zero, if its mean and spread stayed as measured.\n"


def format_ci(ci: dict, scale: float = 1.0, digits: int = 3) -> str:
    if ci["n"] < 2:  # no interval from one run: say so rather than print [nan, nan]
        return f"{ci['mean'] * scale:.{digits}f} ({ci['n']} seed{'s' if ci['n'] != 1 else ''}, no interval)"
    return f"{ci['mean'] * scale:.{digits}f} [{ci['low'] * scale:.{digits}f}, {ci['high'] * scale:.{digits}f}]"


def _key_numbers(number: str, f: dict) -> str:
    if "key_numbers" in f:  # findings measured in their own modules say their numbers themselves
        return f["key_numbers"] or "-"
    if number == "1":
        return "; ".join(f"gap {k}: {format_ci(v, digits=1)} pp" for k, v in f["gap_e2e_minus_bw_pp"].items())
    if number == "2":
        return (f"BW ahead at block 1 in {f['share_bw_ahead_at_block1']:.0%} of cells; E2E overtakes later in "
                f"{f['share_e2e_overtakes_later']:.0%}")
    if number == "3":
        return "; ".join(f"{k} late CKA {format_ci(v['late_consecutive_cka'])}" for k, v in f["by_run"].items()
                         if v["late_consecutive_cka"])
    if number == "4":
        return (f"Spearman rho {f['spearman_rho']:.2f} (p={f['p_value']:.2g}, {f['points']} pairs)"
                if "spearman_rho" in f else f"{f['points']} pairs")
    if number == "5":
        return (f"BW block-1 token similarity higher in {f['share_bw_block1_token_similarity_higher']:.0%}; "
                f"occlusion drop grows with depth in {f['share_occlusion_drop_grows_with_depth']:.0%}")
    if number == "7":
        return "; ".join(f"{k} late CKA plain {format_ci(v['plain'])} vs debiased {format_ci(v['debiased'])}"
                         for k, v in f["by_run"].items()) or "no debiased CKA rows"
    return "; ".join(f"{k}: loss seq {format_ci(v['held_out_loss_top']['sequential'], digits=4)} vs e2e "
                     f"{format_ci(v['held_out_loss_top']['e2e'], digits=4)}, probe seq "
                     f"{format_ci(v['final_probe_mean_over_datasets']['sequential'])} vs e2e "
                     f"{format_ci(v['final_probe_mean_over_datasets']['e2e'])}" for k, v in f["by_K"].items())
