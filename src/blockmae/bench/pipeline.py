"""`blockmae bench --pipeline`: a K-stage blockwise pipeline (`dist.mode=pipeline`) against one process.

Up to four `blockmae pretrain` runs of the same `simultaneous` config, seed and data, each in a fresh run
directory under --runs:

- `single`: one process with every thread (`--threads`, default all cores): the same machine, no torchrun;
- `single-share`: one process with one rank's share of the threads: the K stages' work done one after another
  on the resources a pipeline rank has;
- `pipeline`: K processes under `torchrun --standalone` (`cuda:LOCAL_RANK` on GPUs, so K GPUs are needed),
  each with its share of the threads;
- `ddp`: the same K processes and threads, data parallel instead (`dist.mode=ddp`; when K divides the batch).

Throughput is the median of the logs' `clips_per_s` after the first log row (the pipeline's fill and the
warm-up), and with `--repeats N` the median over N interleaved rounds. Where the pipeline's time goes comes
from each rank's `StageClock` (`summary.json`: `pipeline_time`, same window) in the median pipeline round.
A pipeline runs no faster than its busiest rank, so its ideal rate is batch / (busiest rank's data +
compute per step); what is left is waiting. The final weights of `single`,
`pipeline` and `ddp` must agree to float rounding: they are the same training.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from .launch import child_environment
from .machine import describe_machine, machine, note_load_at_end
from .presets import preset as find_preset
from .publish import command_line, publish

WEIGHT_TOLERANCE = 1e-4  # |single - pipeline| per weight after the run (float rounding; tests: 1e-5 after 4 steps)
PARTS = ("data", "compute", "wait_input", "wait_send", "checkpoint", "other")


def _launch(cmd: list[str], threads: int, log: Path) -> float:
    """Run one training command with `threads` threads per process; its output goes to `log`. Returns wall seconds."""
    env = child_environment(OMP_NUM_THREADS=str(threads))
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    if code:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"blockmae bench --pipeline: `{' '.join(cmd)}` exited with {code}; its last lines "
                         f"({log}):\n{tail}")
    return time.perf_counter() - start


def _steady_rate(run: Path) -> float:
    """Median clips/s of the logged windows after the first (fill and warm-up); the only one if there is one."""
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return statistics.median(row["clips_per_s"] for row in (rows[1:] or rows))


def _max_weight_diff(a: Path, b: Path) -> float:
    from ..checkpoint import latest_checkpoint, load_weights

    x, y = load_weights(latest_checkpoint(a)), load_weights(latest_checkpoint(b))
    return max((x[k] - y[k]).abs().max().item() for k in x)


def median_round(rounds: list[dict]) -> Path:
    """The run of the round with the median rate (the upper median for an even count): the time breakdown shows its
    clocks."""
    return sorted(rounds, key=lambda x: x["clips_per_s"])[len(rounds) // 2]["run"]


def time_per_step(ranks: list[dict]) -> list[dict]:
    """Each rank's seconds per step by part, its busy time (data + compute) and the share of its time it is busy."""
    out = []
    for rank, t in enumerate(ranks):
        steps = max(t["steps"], 1)
        row = {"rank": rank, **{part: t[f"{part}_s"] / steps for part in PARTS}}
        row["busy"] = row["data"] + row["compute"]
        row["busy_share"] = row["busy"] * steps / t["total_s"] if t["total_s"] else 0.0
        out.append(row)
    return out


def analyse(results: dict) -> dict:
    """The pipeline's ideal rate (its busiest rank never waits) and how much of it was reached; the ranks' summed
    busy time against the serial one-process step (the extra: work done twice, as every rank draws the batch and
    builds its targets, and ranks slowing each other on a shared machine); the pipeline against data parallel."""
    batch, ranks = results["settings"]["batch"], results["pipeline_time"]
    busiest = max(ranks, key=lambda r: r["busy"])
    ideal = batch / busiest["busy"]
    measured = results["runs"]["pipeline"]["clips_per_s"]
    serial_step = batch / results["runs"]["single-share"]["clips_per_s"]
    s, ddp = results["settings"], results["runs"].get("ddp")
    return {"pipeline_x_ddp": measured / ddp["clips_per_s"] if ddp else None,
            "oversubscribed": (s["device"] == "cpu"
                               and s["stages"] * s["threads_per_rank"] > results["machine"]["cores"]),
            "busiest_rank": busiest["rank"], "ideal_clips_per_s": ideal, "efficiency": measured / ideal,
            "sum_busy_per_step": sum(r["busy"] for r in ranks), "serial_step": serial_step,
            "extra_work_share": sum(r["busy"] for r in ranks) / serial_step - 1,
            "balance": min(r["busy"] for r in ranks) / busiest["busy"]}


def run_pipeline(preset_name: str = "tiny", stages: int = 2, steps: int = 60, threads: int | None = None,
                 batch: int | None = None, sets: list[str] = (), runs: str | None = None, device: str = "auto",
                 json_path: str | None = None, progress: bool = True, repeats: int = 1) -> dict:
    """Time one process against a `stages`-stage pipeline on a preset; returns (and optionally writes) the results."""
    import torch

    from ..config import config_path, load_config, save_config
    from ..devices import resolve_device, usable_cpus

    preset = find_preset(preset_name)
    if stages < 2:
        raise SystemExit(f"--stages {stages}: a pipeline needs at least 2 stages")
    kind = resolve_device(device, "--device").type
    if kind == "cuda" and torch.cuda.device_count() < stages:
        raise SystemExit(f"--stages {stages} on GPUs needs {stages} GPUs (one per stage); this machine has "
                         f"{torch.cuda.device_count()}. Use --stages {torch.cuda.device_count()} or --device cpu")
    b = batch or preset.batch[kind]
    threads = threads or usable_cpus()
    share = max(1, threads // stages)
    overrides = [*preset.overrides, f"model.partition={stages}", *sets, "train.regime=simultaneous",
                 f"train.batch_size={b}", f"train.max_steps={steps}", f"train.log_every={max(1, steps // 10)}",
                 f"train.checkpoint_every={steps}", "train.progress=false", f"train.device={kind}"]
    cfg = load_config(config_path(preset.config) if preset.config else None, overrides)  # a bad key fails here
    partition = cfg.model.partition
    if len(partition) != stages:
        raise SystemExit(f"--set model.partition={cfg.model.partition} has {len(partition)} stages but --stages "
                         f"is {stages}")
    info = machine(kind)
    say = print if progress else (lambda *a, **k: None)
    say(describe_machine(info, threads))

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(stages)]
    with TemporaryDirectory() as scratch:
        root = Path(runs or scratch)
        root.mkdir(parents=True, exist_ok=True)
        save_config(cfg, root / "bench-config.yaml")  # every run trains exactly this
        pretrain = ["-m", "blockmae", "pretrain", str(root / "bench-config.yaml")]
        plan = {"single": ([sys.executable, *pretrain], threads, f"1 x {threads}"),
                "single-share": ([sys.executable, *pretrain], share, f"1 x {share}"),
                "pipeline": ([*torchrun, *pretrain, "dist.mode=pipeline"], share, f"{stages} x {share}")}
        if b % stages == 0:  # data parallel splits the batch evenly over the ranks
            plan["ddp"] = ([*torchrun, *pretrain, "dist.mode=ddp"], share, f"{stages} x {share}")
        rounds = {name: [] for name in plan}
        for r in range(1, repeats + 1):  # interleaved, so a slow spell on a shared machine hits every run alike
            for name, (cmd, n_threads, layout) in plan.items():
                out = root / f"{name}-{r}"
                if out.exists():
                    raise SystemExit(f"{out} exists: give --runs a new folder (each run starts fresh)")
                say(f"  [{r}/{repeats}] {name:<13} {layout} threads, {steps} steps ...", flush=True)
                wall = _launch([*cmd, "--out", str(out)], n_threads, root / f"{name}-{r}.log")
                rounds[name].append({"run": out, "clips_per_s": _steady_rate(out), "wall_s": wall})
                say(f"  [{r}/{repeats}] {name:<13} {rounds[name][-1]['clips_per_s']:8.3g} clips/s  ({wall:.0f} s)",
                    flush=True)
        measured = {name: {"processes_x_threads": plan[name][2],
                           "clips_per_s": statistics.median(x["clips_per_s"] for x in runs),
                           "wall_s": statistics.median(x["wall_s"] for x in runs),
                           "per_round": [x["clips_per_s"] for x in runs]} for name, runs in rounds.items()}
        summary = json.loads((median_round(rounds["pipeline"]) / "summary.json").read_text())
        diffs = {name: _max_weight_diff(root / "single-1", root / f"{name}-1")
                 for name in ("pipeline", "ddp") if name in plan}
    base_rate = measured["single"]["clips_per_s"]
    for row in measured.values():
        row["x_single"] = row["clips_per_s"] / base_rate
    results = {"machine": info, "preset": preset_name, "preset_about": preset.about,
               "settings": {"device": kind, "stages": stages, "partition": partition, "batch": b, "steps": steps,
                            "threads": threads, "threads_per_rank": share, "sets": list(sets), "repeats": repeats,
                            "command": command_line()},
               "runs": measured, "pipeline_time": time_per_step(summary["pipeline_time"]),
               "weights": {"tolerance": WEIGHT_TOLERANCE, "max_abs_diff": diffs,
                           "ok": all(d <= WEIGHT_TOLERANCE for d in diffs.values())}}
    results["analysis"] = analyse(results)
    note_load_at_end(info)
    return publish(results, format_pipeline_report(results), json_path, say)


def format_pipeline_report(results: dict) -> str:
    s, a = results["settings"], results["analysis"]
    lines = [describe_machine(results["machine"], s["threads"]),
             f"preset {results['preset']}: {results['preset_about']}",
             f"simultaneous, K={s['stages']} stages (layers {s['partition']}), batch {s['batch']}, {s['steps']} steps, "
             f"device {s['device']}, median of {s.get('repeats', 1)} round(s)"
             + (f", --set {' '.join(s['sets'])}" if s["sets"] else ""),
             "",
             "| run | processes x threads | clips/s | x single | wall s | clips/s per round |",
             "|---|---|---|---|---|---|"]
    for name, row in results["runs"].items():
        lines.append(f"| {name} | {row['processes_x_threads']} | {row['clips_per_s']:.3g} | {row['x_single']:.2f} | "
                     f"{row['wall_s']:.0f} | {', '.join(f'{v:.3g}' for v in row['per_round'])} |")
    w = results["weights"]
    lines += ["", "final weights against single, max |diff|: "
              + ", ".join(f"{name} {d:.2g}" for name, d in w["max_abs_diff"].items())
              + f" ({'ok, all' if w['ok'] else 'NOT all'} within {w['tolerance']:g}: the same training)",
              "", "where the pipeline's time goes, ms per step (after the first log row):", "",
              "| rank | " + " | ".join(PARTS) + " | busy share |", "|---" * (len(PARTS) + 2) + "|"]
    for r in results["pipeline_time"]:
        lines.append(f"| {r['rank']} | " + " | ".join(f"{1e3 * r[p]:.1f}" for p in PARTS)
                     + f" | {100 * r['busy_share']:.0f}% |")
    lines += ["",
              f"- ideal (rank {a['busiest_rank']}, the busiest, never waits): {a['ideal_clips_per_s']:.3g} clips/s; "
              f"measured {results['runs']['pipeline']['clips_per_s']:.3g} = {100 * a['efficiency']:.0f}% of it",
              f"- balance (least / most busy rank): {100 * a['balance']:.0f}%"]
    if a["pipeline_x_ddp"]:
        lines.append(f"- pipeline / data parallel on the same processes and threads: {a['pipeline_x_ddp']:.2f}x")
    if a["oversubscribed"]:
        lines.append(f"- oversubscribed: {s['stages']} x {s['threads_per_rank']} threads on "
                     f"{results['machine']['cores']} cores: the busy times include waiting for a core, so the ideal "
                     f"rate above is only a rough bound")
    else:
        lines.append(f"- work per step, all ranks: {1e3 * a['sum_busy_per_step']:.1f} ms against "
                     f"{1e3 * a['serial_step']:.1f} ms for the one-process step with a rank's threads "
                     f"({100 * a['extra_work_share']:+.0f}%: every rank draws the batch, "
                     f"{1e3 * max(r['data'] for r in results['pipeline_time']):.1f} ms at most, and builds its targets, "
                     f"and the processes share caches and memory bandwidth)")
    return "\n".join(lines)
