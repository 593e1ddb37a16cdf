"""The CPU preset sweep: which data, target, masking and length make masked pretraining learn at CPU scale.

Every variant is an end-to-end run (K=1, so each costs what the encoder and one decoder cost) of the
tiny model (configs/tiny-scenes.yaml, the preset this sweep chose) with some overrides. For each it records the held-out loss beside the trivial predictors
(predict zero, predict each position's mean) on the same clips and masks, and the linear probe
at every layer on the probe sets against randomly initialised encoders of the same shape (the mean over three seeds).

    python studies/cpu_preset/sweep.py --out runs/preset_sweep            # all variants, two at a time
    python studies/cpu_preset/sweep.py --out runs/preset_sweep --only scenes-norm-m90 --only scenes-raw-m90

Results: OUT/sweep.json and a markdown table OUT/sweep.md (docs/preset_sweep.md is a copy of a run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from blockmae.analysis.rows_file import read_rows

BASE = ["train.regime=e2e", "model.partition=1", "train.progress=false", "model.decoder.mask_ratio=0.0"]
VARIANTS = {
    # The old preset: moving digits on black.
    "digits-norm-m90": ["data.train=digits", "train.max_steps=600"],
    # The new data: a panning, lit 1/f texture with moving shapes.
    "scenes-norm-m90": ["data.train=scenes", "train.max_steps=600"],
    "scenes-norm-m75": ["data.train=scenes", "train.max_steps=600", "mask.ratio=0.75"],
    "scenes-raw-m90": ["data.train=scenes", "train.max_steps=600", "model.norm_pix=false"],
    "scenes-norm-m90-lr2x": ["data.train=scenes", "train.max_steps=600", "train.lr=8e-3"],
    "scenes-norm-m90-dec2x96": ["data.train=scenes", "train.max_steps=600", "model.decoder.depth=2",
                                "model.decoder.width=96"],
    "scenes-norm-m90-1200": ["data.train=scenes", "train.max_steps=1200"],
}
PROBE_DATA = ["scenes,n=512", "digits,n=512", "gratings2,n=600"]


def blockmae(*args: str, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-m", "blockmae", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def train(name: str, out: Path) -> float:
    """Train a variant (unless done) and return its training time, summed from its log's throughput."""
    run = out / "runs" / name
    if not (run / "summary.json").is_file():
        blockmae("pretrain", "tiny-scenes", *BASE, *VARIANTS[name], "--out", str(run), threads=1)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    batch = 32
    return sum((row["step"] - prev["step"]) * batch / row["clips_per_s"] for prev, row in zip([{"step": 0}] + rows, rows))


def layer_probes(metrics: Path) -> dict[str, dict[str, list[float]]]:
    """run -> dataset -> mean probe accuracy at every layer (the last one is the final layer)."""
    rows = read_rows(metrics)
    out: dict[str, dict[str, dict[int, float]]] = {}
    for r in rows:
        if r["metric"] == "probe_acc" and r["target"] == "mean" and r.get("layer") and "layer2" not in r:
            out.setdefault(r["run"], {}).setdefault(r["dataset"], {})[r["layer"]] = r["value"]
    return {run: {d: [v[k] for k in sorted(v)] for d, v in per.items()} for run, per in out.items()}


def random_floor_mean(floors: dict[str, dict[str, list[float]]]) -> dict[str, list[float]]:
    """dataset -> the mean probe at every layer over the random-init encoders (one per seed)."""
    datasets = next(iter(floors.values()))
    return {d: np.mean([per[d] for per in floors.values()], axis=0).tolist() for d in datasets}


def table(results: dict) -> str:
    """One row per variant: losses beside the trivial predictors, then per probe set the mean probe at
    layer 3 (block 1 of K=4) and at the final layer, the random-init encoder's above them."""
    datasets = [spec.split(",")[0] for spec in PROBE_DATA]
    head = ("| variant | held-out loss | predict zero | position mean | visible mean | loss / position mean | "
            + " | ".join(f"{d} probe, layer 3 / 12" for d in datasets) + " | train s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def probes(layers: dict) -> str:
        return " | ".join(f"{layers[d][2]:.3f} / {layers[d][-1]:.3f}" if d in layers else "-" for d in datasets)

    lines.append("| random init | - | - | - | - | - | " + probes(results["random_floor"]) + " | - |")
    for name, r in results["variants"].items():
        b = r["baselines"]
        lines.append(f"| {name} | {r['held_out']:.4f} | {b['zero']:.4f} | {b['position_mean']:.4f} | "
                     f"{b['visible_mean']:.4f} | {r['held_out'] / b['position_mean']:.3f} | "
                     + probes(r["probes"]) + f" | {r['train_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--only", action="append", choices=list(VARIANTS), help="run only these variants")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (one thread each)")
    args = parser.parse_args()
    names = args.only or list(VARIANTS)
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        seconds = dict(zip(names, pool.map(lambda n: train(n, args.out), names)))
    runs = [str(args.out / "runs" / n) for n in names]
    analysis = args.out / "analysis"
    blockmae("analyze", *runs, *sum((["--data", d] for d in PROBE_DATA), []), "--random-floor", "--no-occlusion",
             "--out", str(analysis), threads=os.cpu_count() or 1)
    probes = layer_probes(analysis / "metrics.jsonl")
    floor = random_floor_mean({k: v for k, v in probes.items() if k.startswith("random")})
    results = {"probe_data": PROBE_DATA, "random_floor": floor, "variants": {}}
    for name in names:
        held = json.loads((args.out / "runs" / name / "summary.json").read_text())["held_out"]
        results["variants"][name] = {"overrides": VARIANTS[name], "held_out": held["losses"][-1],
                                     "baselines": held["baselines"], "probes": probes[name], "train_s": seconds[name]}
    (args.out / "sweep.json").write_text(json.dumps(results, indent=1))
    (args.out / "sweep.md").write_text(table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
