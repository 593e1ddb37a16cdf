"""Decoder masking's probe cost per target: final-block linear probe of simultaneous K=4 with each decoder
reconstructing a subset of the hidden tubelets, minus the same runs without (paired by seed).

    python studies/decoder_masking/compare.py docs/results/decoder_masking docs/results/gap

Prints, per decoder mask ratio, probe set and target, the change in pp (mean [95% t-interval] over seeds), and
whether every target's mean change stays within 1 pp (the lever's bar in docs/performance.md).
"""

import argparse
from collections import defaultdict
from pathlib import Path

from blockmae.analysis.rows_file import read_rows
from blockmae.eval.stats import mean_ci

BAR_PP = 1.0


def final_probes(path: Path, regime: str = "simultaneous") -> dict:
    """(decoder mask ratio, dataset, target) -> {seed: final-block probe} for one regime's runs; the ratio is
    read from the run name (`mask_ratio0.5-s0`), 0.0 for runs without one."""
    by_block = defaultdict(dict)
    for r in read_rows(path):
        if (r["metric"] == "probe_acc" and r["regime"] == regime and r.get("block") and r.get("step") is None
                and r.get("split") in (None, "test")):
            ratio = float(r["run"].split("mask_ratio")[1].split("-")[0]) if "mask_ratio" in r["run"] else 0.0
            by_block[(ratio, r["dataset"], r["target"], r["seed"])][r["block"]] = r["value"]
    out = defaultdict(dict)
    for (ratio, dataset, target, seed), blocks in by_block.items():
        out[(ratio, dataset, target)][seed] = blocks[max(blocks)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("masked", type=Path,
                        help="the rows (a published directory, or its metrics.jsonl[.gz]) of the runs with decoder masking")
    parser.add_argument("reference", type=Path, help="the rows holding the same runs without it")
    args = parser.parse_args()
    masked, reference = final_probes(args.masked), final_probes(args.reference)
    ratios = sorted({ratio for ratio, _, _ in masked if ratio > 0})
    print("| decoder mask ratio | probe set | target | without (%) | change (pp) |")
    print("|---|---|---|---|---|")
    for ratio in ratios:
        worst = 0.0
        for (r, dataset, target), seeds in sorted(masked.items()):
            ref = reference.get((0.0, dataset, target), {})
            common = sorted(set(seeds) & set(ref))
            if r != ratio or not common:
                continue
            mean, low, high = mean_ci([100 * (seeds[s] - ref[s]) for s in common])
            worst = min(worst, mean)
            print(f"| {ratio:g} | {dataset} | {target} | {100 * sum(ref[s] for s in common) / len(common):.1f} "
                  f"| {mean:+.1f} [{low:+.1f}, {high:+.1f}] |")
        verdict = "within" if worst > -BAR_PP else "outside"
        print(f"| {ratio:g} | **largest loss** | | | {worst:+.1f}: {verdict} the {BAR_PP:g} pp bar |")


if __name__ == "__main__":
    main()
