"""Pipeline (`dist.mode=pipeline`, K processes) against one process, same config, seed and data.

    python studies/pipeline_throughput.py tiny --steps 60 --out runs/pipe-speed [key=value ...]

Runs `blockmae pretrain` once in one process and once under `torchrun --standalone --nproc-per-node K`
(K = the config's stages), each into a fresh run directory under --out, and prints, with the machine:
steady-state clips/s (median of the logged rates after the first --skip log rows, as the log's
`clips_per_s`), wall time of the whole command, and the largest weight difference between the two
final checkpoints (float rounding: the pipeline reproduces simultaneous training). Threads: the single
process gets --threads (default: every core), each pipeline rank --threads // K (at least 1).
On GPUs each rank takes cuda:LOCAL_RANK, so K GPUs are needed for the pipeline.
`compare(...)` is the same as a function (returns the numbers as a dict).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from blockmae.config import config_path, load_config
from blockmae.config import partition_layers
from blockmae.train.checkpoint import latest_checkpoint


def _run(cmd: list[str], threads: int) -> float:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(p for p in [src, os.environ.get("PYTHONPATH", "")] if p)}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - start


def _rate(run: Path, skip: int) -> float:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    rates = [row["clips_per_s"] for row in rows[skip:]] or [row["clips_per_s"] for row in rows]
    return statistics.median(rates)


def compare(config: str, overrides: list[str], steps: int, out: str | Path, threads: int | None = None,
            skip: int = 2) -> dict:
    """Time `steps` steps of a simultaneous run in one process and as a K-stage pipeline; returns the numbers."""
    out = Path(out)
    overrides = [*overrides, "train.regime=simultaneous", f"train.max_steps={steps}", "train.progress=false",
                 f"train.checkpoint_every={steps}"]
    cfg = load_config(config_path(config), overrides)
    k = len(partition_layers(cfg.model.partition, cfg.model.depth))
    threads = threads or os.cpu_count() or 1
    base = [sys.executable, "-m", "blockmae", "pretrain", config, *overrides]
    single = _run([*base, "--out", str(out / "single")], threads)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(k)]
    pipe = _run([*torchrun, *base[1:], "dist.mode=pipeline", "--out", str(out / "pipeline")], max(1, threads // k))
    a = load_file(str(latest_checkpoint(out / "single") / "model.safetensors"))
    b = load_file(str(latest_checkpoint(out / "pipeline") / "model.safetensors"))
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
                         + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""),
              "config": config, "overrides": overrides, "stages": k, "steps": steps, "threads": threads,
              "single": {"clips_per_s": _rate(out / "single", skip), "wall_s": single},
              "pipeline": {"clips_per_s": _rate(out / "pipeline", skip), "wall_s": pipe},
              "max_weight_diff": max((a[key] - b[key]).abs().max().item() for key in a)}
    result["speedup"] = result["pipeline"]["clips_per_s"] / result["single"]["clips_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--skip", type=int, default=2, help="logged rows left out of the median (warm-up)")
    args = parser.parse_args()
    result = compare(args.config, args.overrides, args.steps, args.out, args.threads, args.skip)
    print(json.dumps(result, indent=1))
    (Path(args.out) / "pipeline_throughput.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
