"""The gap table behind docs/results.md ("Closing the blockwise gap"), from the study's published outputs and a
bench JSON of the same regimes.

    python studies/gap/table.py docs/results/gap --bench docs/performance/tiny-cpu-no-decoder-masking.json
    python studies/gap/table.py docs/results/gap_hierarchy --bench docs/performance/tiny-2f-no-decoder-masking.json \
        [--metric attentive_probe_acc]

Per regime (K=4, 3 seeds): the final-block mean probe on every probe set, mean [95% t-interval] over seeds; the
share of the simultaneous-to-E2E gap it closes (on the seed means; per probe set and on the mean over probe
sets); step time and peak step memory relative to E2E and to simultaneous, from the bench (same machine, one
run), which must decode what the study's runs decode (the study sets model.decoder.mask_ratio=0.0; the bench's
simultaneous rows use the default, 0.5, since it became the default: hence the older JSON above). The goal line: a regime without end-to-end backpropagation closing at least half of the gap at no more
than 1.3x the step time of plain simultaneous training.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from blockmae.analysis.rows_file import read_rows
from blockmae.eval.stats import mean_ci
from blockmae.regimes import REGIMES, display_name

# regime -> bench row; blockwise-finetune is simultaneous then E2E (with monitors), weighted by its steps below.
BENCH_ROWS = {"e2e": "e2e-K4-monitors", "simultaneous": "sim-K4-lean", "overlap": "overlap-K4-lean",
              "noisy": "noisy-K4-lean", "coarse-targets": "coarse-K4-lean", "deep-supervision": "sim-K4-lean"}


def final_block_probes(rows: list[dict], metric: str = "probe_acc") -> dict:
    """regime -> dataset -> seed -> final-block mean probe (evaluation split, final checkpoint); `metric`:
    probe_acc (linear) or attentive_probe_acc."""
    blocks = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if (r["metric"] == metric and r["target"] == "mean" and r.get("block") and r.get("step") is None
                and "block2" not in r and r.get("split") in (None, "test")):
            blocks[(r["regime"], r["dataset"], r["seed"])][r["block"]] = r["value"]
    out = defaultdict(lambda: defaultdict(dict))
    for (regime, dataset, seed), by_block in blocks.items():
        out[regime][dataset][seed] = by_block[max(by_block)]
    return out


def fmt(values) -> str:
    mean, low, high = mean_ci(values)
    return f"{100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}]" if len(values) > 1 else f"{100 * mean:.1f}"


def share_closed(value: float, sim: float, e2e: float) -> str:
    gap = e2e - sim
    return "no gap" if gap <= 0 else f"{100 * (value - sim) / gap:+.0f}%"


def step_costs(bench: dict, finetune_share: float) -> dict:
    """regime -> (step time / E2E, step time / simultaneous, peak step memory / E2E), E2E = e2e-K4-monitors."""
    rows = {r["name"]: r for r in bench["rows"]}
    e2e, sim = rows["e2e-K4-monitors"], rows["sim-K4-lean"]
    out = {}
    for regime, name in BENCH_ROWS.items():
        r = rows[name] if regime != "deep-supervision" else None
        if r is not None:
            out[regime] = (r["step_s"] / e2e["step_s"], r["step_s"] / sim["step_s"], r["step_bytes"] / e2e["step_bytes"])
    step = (1 - finetune_share) * sim["step_s"] + finetune_share * e2e["step_s"]
    out["blockwise-finetune"] = (step / e2e["step_s"], step / sim["step_s"],
                                 max(sim["step_bytes"], e2e["step_bytes"]) / e2e["step_bytes"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("published", type=Path, help="the study's --publish directory")
    parser.add_argument("--bench", type=Path, help="a `blockmae bench` JSON with the rows in BENCH_ROWS")
    parser.add_argument("--finetune-share", type=float, default=60 / 600, help="share of steps trained end to end")
    parser.add_argument("--metric", default="probe_acc", choices=["probe_acc", "attentive_probe_acc"],
                        help="the linear probe (default) or the attentive one")
    args = parser.parse_args()
    rows = read_rows(args.published)
    probes = final_block_probes(rows, args.metric)
    if not probes.get("e2e"):
        raise SystemExit(f"{args.published}: no final-block {args.metric} rows for E2E (did the study run that probe?)")
    datasets = sorted(probes["e2e"])
    costs = step_costs(json.loads(args.bench.read_text()), args.finetune_share) if args.bench else {}

    def by_seed(regime) -> dict:  # seed -> the mean over probe sets
        seeds = sorted(set.intersection(*(set(probes[regime][d]) for d in datasets)))
        return {s: np.mean([probes[regime][d][s] for d in datasets]) for s in seeds}

    def overall(regime):
        return list(by_seed(regime).values())

    means = {reg: {d: np.mean(list(probes[reg][d].values())) for d in datasets} | {"all": np.mean(overall(reg))}
             for reg in probes}
    print("| regime | " + " | ".join(f"{d} (%)" for d in datasets) + " | mean over sets (%) | gap closed "
          "(per set; mean) | step time / E2E | / simultaneous | step memory / E2E |")
    print("|---" * (len(datasets) + 6) + "|")
    order = [r for r in list(REGIMES) + ["random"] if r in probes]
    for regime in order:
        cells = [fmt(list(probes[regime][d].values())) for d in datasets] + [fmt(overall(regime))]
        closed = "-" if regime == "random" else "; ".join(
            share_closed(means[regime][d], means["simultaneous"][d], means["e2e"][d]) for d in datasets + ["all"])
        cost = " | ".join(f"{c:.2f}x" for c in costs[regime]) if regime in costs else "- | - | -"
        name = (f"Random init ({len(probes[regime][datasets[0]])} encoders)" if regime == "random"
                else display_name(regime))
        print(f"| {name} | " + " | ".join(cells) + f" | {closed} | {cost} |")
    goal = [reg for reg in order if reg in REGIMES and REGIMES[reg].blockwise and reg != "simultaneous"
            and means["e2e"]["all"] > means["simultaneous"]["all"]
            and (means[reg]["all"] - means["simultaneous"]["all"]) >= 0.5 * (means["e2e"]["all"] - means["simultaneous"]["all"])
            and costs.get(reg, (0, 99))[1] <= 1.3]
    e2e_all, sim_all = by_seed("e2e"), by_seed("simultaneous")
    gap = [100 * (e2e_all[s] - sim_all[s]) for s in sorted(set(e2e_all) & set(sim_all))]  # paired by seed
    gap_mean, gap_low, gap_high = mean_ci(gap)
    print(f"\nE2E minus simultaneous (mean over sets, paired by seed): {gap_mean:+.1f} [{gap_low:+.1f}, {gap_high:+.1f}] pp")
    if means["e2e"]["all"] <= means["simultaneous"]["all"]:
        verdict = "no gap to close (E2E does not beat simultaneous on the mean over sets)"
    elif gap_low <= 0:
        verdict = "no measurable gap to close (the interval of E2E minus simultaneous reaches 0)"
    else:
        verdict = "met by " + ", ".join(map(display_name, goal)) if goal else "not met"
    print(f"\nGoal (a blockwise regime closing >= half of the gap on the mean over sets at <= 1.3x simultaneous's "
          f"step time): {verdict}")


if __name__ == "__main__":
    main()
