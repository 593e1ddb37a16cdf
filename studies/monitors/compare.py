"""Held-out per-stage losses of E2E's cheaper monitors (trained every m-th step, or fitted after training) against
always-on monitors (same config, same seeds; the encoder is bit-identical, so the monitors alone differ).

    python studies/monitors/compare.py docs/results/monitors/summaries.json docs/results/gap/summaries.json
    python studies/monitors/compare.py docs/results/monitors_fitted/summaries.json docs/results/gap/summaries.json

Prints, per stage, each arm's mean held-out loss over seeds and the per-seed difference (mean [95% t-interval],
absolute and relative), and the largest relative difference.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from blockmae.eval.stats import mean_ci


def e2e_losses(path: Path) -> dict[int, list[float]]:
    """seed -> held-out per-stage losses of the E2E runs in a study's summaries.json."""
    return {s["seed"]: s["held_out"]["losses"] for s in json.loads(path.read_text()).values() if s["regime"] == "e2e"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cheaper", type=Path, help="summaries.json of the runs with cheaper monitors "
                        "(train.monitor_every > 1, or train.monitor_fit_steps > 0)")
    parser.add_argument("always", type=Path, help="summaries.json of the same runs with monitors every step")
    args = parser.parse_args()
    cheaper, always = e2e_losses(args.cheaper), e2e_losses(args.always)
    seeds = sorted(set(cheaper) & set(always))
    if not seeds:
        raise SystemExit("no seed in common between the two summaries")
    print(f"seeds {seeds}\n")
    print("| stage | always-on monitors | cheaper monitors | difference | relative |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for k in range(len(always[seeds[0]])):
        a = np.array([always[s][k] for s in seeds])
        b = np.array([cheaper[s][k] for s in seeds])
        diff, low, high = mean_ci(b - a)
        rel = 100 * (b - a) / a
        worst = max(worst, float(np.abs(rel).max()))
        print(f"| {k + 1} | {a.mean():.4f} | {b.mean():.4f} | {diff:+.4f} [{low:+.4f}, {high:+.4f}] "
              f"| {rel.mean():+.2f}% |")
    print(f"\nlargest relative difference of any stage and seed: {worst:.2f}%")


if __name__ == "__main__":
    main()
