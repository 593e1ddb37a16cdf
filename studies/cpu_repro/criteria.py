"""Did pretraining matter, and how do probes develop with depth? The checks behind docs/results.md, from a
study's published outputs.

    python studies/cpu_repro/criteria.py docs/results/cpu_repro [--data scenes]

Prints, with 95% t-intervals over seeds:
- each regime's top-stage held-out loss on the pretraining data (the analysis's rows: every run on the same
  clips and masks) against the trivial predictors on those clips and masks, and its margin below the copy;
- each regime's final-block mean probe against chance and the random-init encoders (one per seed), per probe
  set, the difference with a Welch interval that counts the floor's spread as well as the regime's;
- depth: the final-block minus block-1 mean probe (paired by seed) per regime and probe set, the random
  encoders' own, and the layer at which each cell's mean probe peaks;
- the study's training and analysis time.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from blockmae.analysis.rows import difference_and_half_width
from blockmae.analysis.rows_file import read_rows
from blockmae.eval.reconstruction import BASELINES
from blockmae.eval.stats import mean_ci


def fmt(values, scale: float = 1.0, digits: int = 3) -> str:
    mean, low, high = mean_ci(values)
    if len(values) < 2:  # no interval from one value
        return f"{mean * scale:.{digits}f} (1 seed)"
    return f"{mean * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def fmt_difference(values, floor) -> str:
    """mean(values) - mean(floor) in pp with its 95% Welch interval (a floor of one seed adds no spread)."""
    diff, half = difference_and_half_width(values, floor)
    return f"{100 * diff:+.1f} [{100 * (diff - half):+.1f}, {100 * (diff + half):+.1f}]"


def final(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("step") is None and "block2" not in r and "layer2" not in r
            and "run2" not in r and r.get("split") in (None, "test")]


def losses(rows: list[dict], dataset: str) -> list[str]:
    top = defaultdict(dict)  # (regime, K) -> run -> (block, loss) at the run's top block
    trivial = defaultdict(list)
    for r in final(rows):
        if r["dataset"] != dataset:
            continue
        if r["metric"] == "recon_loss" and r["regime"] != "random" and r.get("block"):
            best = top[(r["regime"], r["K"])].get(r["run"], (0, None))
            if r["block"] > best[0]:
                top[(r["regime"], r["K"])][r["run"]] = (r["block"], r["value"])
        elif r["metric"].startswith("recon_loss_"):
            trivial[r["metric"][len("recon_loss_"):]].append(r["value"])
    base = {k: float(np.mean(trivial[k])) for k in BASELINES if trivial.get(k)}
    lines = [f"## Held-out loss (top stage) on {dataset}, mean [95% CI] over seeds, beside the trivial predictors on "
             "the same clips and masks",
             "trivial predictors: " + ", ".join(f"{k} {v:.4f}" for k, v in base.items()),
             "| regime | K | loss | / position mean | below the copy (%) | above the oracle (%) |", "|---|---|---|---|---|---|"]
    for (regime, K), runs in sorted(top.items()):
        values = [v for _, v in runs.values()]
        cells = [fmt(values, digits=4)]
        cells.append(fmt(np.divide(values, base["position_mean"])) if "position_mean" in base else "-")
        cells.append(fmt(100 * (1 - np.divide(values, base["visible_mean"])), digits=1) if "visible_mean" in base else "-")
        cells.append(fmt(100 * (np.divide(values, base["oracle_constant"]) - 1), digits=1)
                     if "oracle_constant" in base else "-")
        lines.append(f"| {regime} | {K} | " + " | ".join(cells) + " |")
    return lines


def unit_probes(rows: list[dict], unit: str) -> dict:
    """(regime, K, dataset) -> run -> {block or layer: mean probe}."""
    other = "layer" if unit == "block" else "block"
    out = defaultdict(lambda: defaultdict(dict))
    for r in final(rows):
        if r["metric"] == "probe_acc" and r["target"] == "mean" and r.get(unit) and r.get(other) is None:
            out[(r["regime"], r["K"], r["dataset"])][r["run"]][r[unit]] = r["value"]
    return out


def chance(rows: list[dict]) -> dict[str, float]:
    values = defaultdict(list)
    for r in final(rows):
        if r["metric"] == "chance_acc" and r["target"] == "mean":
            values[r["dataset"]].append(r["value"])
    return {d: float(np.mean(v)) for d, v in values.items()}


def probes(rows: list[dict]) -> list[str]:
    table, odds = unit_probes(rows, "block"), chance(rows)
    floor = defaultdict(list)  # dataset -> the final-block probe of every random encoder (one per seed)
    for (regime, _, dataset), runs in table.items():
        if regime == "random":
            floor[dataset] += [b[max(b)] for b in runs.values()]
    lines = ["## Final-block mean probe against chance and the random-init encoders; depth (final minus block 1)",
             "| regime | K | probe set | chance (%) | final block (%) | random init (%) | minus random (pp) | "
             "final minus block 1 (pp) |", "|---|---|---|---|---|---|---|---|"]
    for (regime, K, dataset), runs in sorted(table.items(), key=lambda kv: (kv[0][0] == "random",) + kv[0]):
        last = [b[max(b)] for b in runs.values()]
        depth = [b[max(b)] - b[1] for b in runs.values()]
        versus = "-" if regime == "random" else fmt_difference(last, floor[dataset])
        odds_text = f"{100 * odds[dataset]:.1f}" if dataset in odds else "-"
        lines.append(f"| {regime} | {K} | {dataset} | {odds_text} | {fmt(last, 100, 1)} | {fmt(floor[dataset], 100, 1)}"
                     f" | {versus} | {fmt(depth, 100, 1)} |")
    return lines


def peaks(rows: list[dict], early: range = range(2, 5)) -> list[str]:
    """The layer at which each (regime, K, probe set) cell's mean probe (over seeds) peaks."""
    table = unit_probes(rows, "layer")
    lines = ["## Where the mean probe peaks (layer, mean over seeds)", "| regime | K | probe set | peak layer | "
             "peak (%) | last layer (%) |", "|---|---|---|---|---|---|"]
    cells = 0
    for (regime, K, dataset), runs in sorted(table.items()):
        layers = sorted(set.intersection(*(set(v) for v in runs.values())))
        means = [float(np.mean([runs[r][i] for r in runs])) for i in layers]
        peak = layers[int(np.argmax(means))]
        cells += regime != "random" and peak in early
        lines.append(f"| {regime} | {K} | {dataset} | {peak} | {100 * max(means):.1f} | {100 * means[-1]:.1f} |")
    trained = sum(1 for key in table if key[0] != "random")
    lines.append(f"trained cells peaking at layers {early.start}-{early.stop - 1}: {cells} of {trained}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("published", type=Path, help="a study's --publish directory (summaries.json, metrics.jsonl.gz)")
    parser.add_argument("--data", default="scenes", help="the pretraining data's name in the rows (default: scenes)")
    args = parser.parse_args()
    rows = read_rows(args.published)
    timings = json.loads((args.published / "timings.json").read_text())
    lines = losses(rows, args.data) + [""] + probes(rows) + [""] + peaks(rows) + [""]
    lines.append("time: " + ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in timings.items()))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
