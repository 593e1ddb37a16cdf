"""Does pretraining matter in the CPU study? The checks behind docs/results.md, from a study's published outputs.

    python studies/cpu_repro/criteria.py docs/results/cpu_repro

Prints, with 95% t-intervals over seeds:
- each regime's top-stage held-out loss against the trivial predictors on the same clips and masks;
- each regime's final-block mean probe against the random-init encoder, per probe set;
- depth: the final-block minus block-1 mean probe (paired by seed), per regime and probe set;
- the study's training and analysis time.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from blockmae.eval.stats import mean_ci


def fmt(values, scale: float = 1.0, digits: int = 3) -> str:
    mean, low, high = mean_ci(values)
    return f"{mean * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def losses(summaries: dict) -> list[str]:
    lines = ["## Held-out loss (top stage) against the trivial predictors, mean [95% CI] over seeds",
             "| regime | K | loss | / position mean | / visible mean | predict zero | position mean | visible mean |",
             "|---|---|---|---|---|---|---|---|"]
    groups = defaultdict(list)
    for s in summaries.values():
        groups[(s["regime"], len(s["partition"]))].append(s["held_out"])
    for (regime, K), held in sorted(groups.items()):
        top = [h["losses"][-1] for h in held]
        base = {k: [h["baselines"][k] for h in held] for k in ("zero", "position_mean", "visible_mean")}
        lines.append(f"| {regime} | {K} | {fmt(top, digits=4)} | "
                     f"{fmt(np.divide(top, base['position_mean']))} | {fmt(np.divide(top, base['visible_mean']))} | "
                     + " | ".join(f"{np.mean(base[k]):.4f}" for k in base) + " |")
    return lines


def block_probes(rows: list[dict]) -> dict:
    """(regime, K, dataset) -> seed -> {block: mean probe}, final rows of the evaluation split only."""
    out = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if (r["metric"] == "probe_acc" and r["target"] == "mean" and r.get("block") and r.get("step") is None
                and "block2" not in r and r.get("split") in (None, "test")):
            out[(r["regime"], r["K"], r["dataset"])][r["seed"]][r["block"]] = r["value"]
    return out


def probes(rows: list[dict]) -> list[str]:
    table = block_probes(rows)
    floor = {d: next(iter(v.values()))[max(next(iter(v.values())))] for (reg, _, d), v in table.items()
             if reg == "random"}
    lines = ["## Final-block mean probe against the random-init encoder; depth (final minus block 1), in pp",
             "| regime | K | probe set | final block (%) | random init (%) | minus random (pp) | "
             "final minus block 1 (pp) |", "|---|---|---|---|---|---|---|"]
    for (regime, K, dataset), seeds in sorted(table.items()):
        if regime == "random":
            continue
        final = [b[max(b)] for b in seeds.values()]
        depth = [b[max(b)] - b[1] for b in seeds.values()]
        lines.append(f"| {regime} | {K} | {dataset} | {fmt(final, 100, 1)} | {100 * floor[dataset]:.1f} | "
                     f"{fmt(np.subtract(final, floor[dataset]), 100, 1)} | {fmt(depth, 100, 1)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("published", type=Path, help="a study's --publish directory (summaries.json, metrics.jsonl)")
    args = parser.parse_args()
    summaries = json.loads((args.published / "summaries.json").read_text())
    rows = [json.loads(line) for line in (args.published / "metrics.jsonl").read_text().splitlines()]
    timings = json.loads((args.published / "timings.json").read_text())
    lines = losses(summaries) + [""] + probes(rows) + [""]
    lines.append(f"training {timings['train_s'] / 60:.1f} min, analysis {timings['analysis_s'] / 60:.1f} min")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
