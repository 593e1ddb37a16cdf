"""The probe rule, the screen's and every study's: do the deep encoder's final blocks read the generator's latents,
and does reading them need the depth?

Two parts, each a difference in percentage points with a 95% t-interval that must clear zero and a mean that must
reach its bar (the four outcomes of `report.depth_rule`): the final block against random-init encoders of the same
shape (`ABOVE_RANDOM_PP`; Welch's t, the random encoders have seeds of their own) and against the same run's first
block (`RISE_PP`; per-seed differences, paired by seed). The rule is measured under every probe the analysis fitted
(linear; attentive with `--attentive`); a setting meets it under either. Per target, the block where the probe peaks
(the first block within `PEAK_TOLERANCE` of its best) says which latents are decoded where the depth is.
"""

from __future__ import annotations

import math
from collections import defaultdict

from ..analysis.rows import (datasets_of, final_rows, group_of, group_sort_key, last_block, mean_and_half_width,
                             select)
from .depth_rule import combined, excess_text, outcome_of
from .verdicts import paired, welch

PROBES = {"probe_acc": "linear", "attentive_probe_acc": "attentive"}
ABOVE_RANDOM_PP = 10.0
RISE_PP = 5.0
PEAK_TOLERANCE = 0.01  # a target peaks at the first block within this of its best (a saturated one at block 1)


def final_values(rows: list[dict], metric: str) -> dict[tuple[str, int, str], float]:
    """{(run, block, target): value} of `metric` for the final models, per block (the screen's one dataset)."""
    return {(r["run"], r["block"], r["target"]): r["value"] for r in select(final_rows(rows), metric, target=None)}


def runs_by_kind(values: dict, kinds: dict[str, str]) -> dict[str, list[str]]:
    """The runs that have values, as deep, shallow and random (any run the screen did not train)."""
    runs = {"deep": [], "shallow": [], "random": []}
    for run in dict.fromkeys(run for run, _, _ in values):
        runs[kinds.get(run, "random")].append(run)
    return runs


def probe_blocks(rows: list[dict], kinds: dict[str, str], K: int, metric: str = "probe_acc",
                 target: str = "mean") -> dict[str, list[list[float]]]:
    """`metric` (default: the linear probe's mean over targets) per block, [mean, 95% half-width] over seeds, for
    the deep, shallow and random-init encoders."""
    values = final_values(rows, metric)
    out = {}
    for kind, names in runs_by_kind(values, kinds).items():
        blocks = 1 if kind == "shallow" else K
        out[kind] = [list(mean_and_half_width([values.get((n, b, target)) for n in names]))
                     for b in range(1, blocks + 1)] if names else []
    return out


def probe_rule(rows: list[dict], kinds: dict[str, str], K: int) -> dict[str, dict]:
    """Per probe fitted ("linear", "attentive"): the two parts of the rule, whether both are met, and per target
    the deep encoder's mean per block, the random encoders' top block and the block where the deep one peaks."""
    out = {}
    for metric, name in PROBES.items():
        values = final_values(rows, metric)
        runs = runs_by_kind(values, kinds)
        deep = [run for run in runs["deep"] if (run, K, "mean") in values and (run, 1, "mean") in values]
        if not deep:
            continue
        top = [100 * values[(run, K, "mean")] for run in deep]
        floor = [100 * values[(run, K, "mean")] for run in runs["random"] if (run, K, "mean") in values]
        parts = {"above_random": outcome_of(welch(top, floor, ABOVE_RANDOM_PP), ABOVE_RANDOM_PP),
                 "rise": outcome_of(paired([t - 100 * values[(run, 1, "mean")] for t, run in zip(top, deep)],
                                           RISE_PP), RISE_PP)}
        targets = {}
        for target in dict.fromkeys(t for _, _, t in values if t != "mean"):
            per_block = [mean_and_half_width([values.get((run, b, target)) for run in deep])[0]
                         for b in range(1, K + 1)]
            random_top = mean_and_half_width([values.get((run, K, target)) for run in runs["random"]])[0]
            finite = [(b, v) for b, v in enumerate(per_block, 1) if math.isfinite(v)]
            best = max((v for _, v in finite), default=math.nan)
            targets[target] = {"deep": per_block, "random": random_top,
                               "peak_block": next((b for b, v in finite if v >= best - PEAK_TOLERANCE), None)}
        out[name] = {**parts, "outcome": combined([p["outcome"] for p in parts.values()]), "seeds": len(deep),
                     "random_encoders": len(floor), "targets": targets}
    return out


def probe_markdown(rule: dict[str, dict], K: int) -> list[str]:
    """The rule's table (one row per probe) and the per-target table, as markdown lines."""
    if not rule:
        return []

    lines = ["## Probes: does the final block read the latents, and does it need the depth?", "",
             f"The final block must beat random-init encoders of its shape by at least {ABOVE_RANDOM_PP:.0f} pp and "
             f"its own block 1 by at least {RISE_PP:.0f} pp, each 95 % interval clear of zero (held-out clips, "
             "mean over targets; the rule is met under either probe; not met: an interval wholly below its bar; "
             "inconclusive: the bar inside the interval, or the interval reaching zero).", "",
             "| probe | seeds | final block - random init (pp) | final block - block 1 (pp) | rule |",
             "|---|---|---|---|---|"]
    for name, r in rule.items():
        lines.append(f"| {name} | {r['seeds']} (random: {r['random_encoders']}) | {excess_text(r['above_random'])} | "
                     f"{excess_text(r['rise'])} | {r['outcome']} |")
    blocks = " | ".join(f"block {b}" for b in range(1, K + 1))
    lines += ["", "Per target (deep encoder, mean over seeds, %; random init at its top block):", "",
              f"| probe | target | {blocks} | random init | peaks at |", "|---|---|" + "---|" * (K + 2)]
    for name, r in rule.items():
        for target, t in r["targets"].items():
            cells = " | ".join(f"{100 * v:.1f}" if math.isfinite(v) else "n/a" for v in t["deep"])
            peak = t["peak_block"]
            where = "n/a" if peak is None else f"block {peak} ({'upper' if peak > K / 2 else 'lower'} half)"
            random = f"{100 * t['random']:.1f}" if math.isfinite(t["random"]) else "n/a"
            lines.append(f"| {name} | {target} | {cells} | {random} | {where} |")
    return lines + [""]


def study_probe_rule(rows: list[dict], dataset: str) -> dict:
    """Per trained group with two blocks or more: the probe rule on `dataset`, the group's runs as the deep encoder
    against the random-init encoders of the same model (final models). The floor is each random encoder's final
    block, whatever K it was cut into (the same layers); groups without random encoders of their model are left out:
    the rule needs its floor."""
    rows = [r for r in final_rows(rows) if r.get("dataset") == dataset and r.get("metric") in PROBES
            and r.get("block") is not None]
    random = [r for r in rows if r.get("regime") == "random"]
    top = last_block(random)
    groups = defaultdict(set)  # group -> its runs
    for r in rows:
        if r.get("regime") != "random" and r.get("K"):
            groups[group_of(r)].add(r["run"])
    out = {}
    for group, runs in groups.items():
        K = int(group.K)
        floor = [{**r, "block": K} for r in random if r["block"] == top[r["run"]] and group_of(r).model == group.model]
        if K < 2 or not floor:
            continue
        rule = probe_rule([r for r in rows if r["run"] in runs] + floor, {run: "deep" for run in runs}, K)
        if rule:
            out[group] = rule
    return out


def peaks_text(judged: dict) -> str:
    """'target block, ...': where each target's probe peaks under one probe of the rule."""
    return ", ".join(f"{target} {t['peak_block']}" for target, t in judged["targets"].items()
                     if t["peak_block"] is not None)


def study_probe_markdown(rows: list[dict]) -> str:
    """The probe rule per dataset and trained group as a markdown section (findings.md): both parts per probe, and
    where each target peaks; empty without probes beside random encoders."""
    lines = []
    for dataset in datasets_of(rows):
        judged = study_probe_rule(rows, dataset)
        for group in sorted(judged, key=group_sort_key):
            K = int(group.K)
            for name, r in judged[group].items():
                peaks = peaks_text(r)
                lines.append(f"| {dataset} | {group.regime} K={K} | {name} | {r['seeds']} ({r['random_encoders']}) | "
                             f"{excess_text(r['above_random'])} | {excess_text(r['rise'])} | {r['outcome']} | {peaks} |")
    if not lines:
        return ""
    return "\n".join([
        "## Do the final blocks read the latents, and does it take the depth? (probes)", "",
        "| dataset | group | probe | runs (random encoders) | final block - random init (pp) | "
        "final block - block 1 (pp) | rule | each target peaks at block |", "|---|---|---|---|---|---|---|---|",
        *lines, "",
        f"The final block's mean probe over targets (held-out clips) must beat random-init encoders of its shape by at "
        f"least {ABOVE_RANDOM_PP:.0f} pp (Welch) and its own block 1 by at least {RISE_PP:.0f} pp (paired by seed), "
        "each 95 % interval clear of zero: met; not met: an interval wholly below its bar; inconclusive: the bar "
        "inside the interval or the interval reaching zero; not measured: one run. A target peaks at the first block "
        f"within {100 * PEAK_TOLERANCE:.0f} pp of its best.", ""])

