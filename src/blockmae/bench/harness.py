"""`blockmae bench`: training and extraction throughput and peak memory, ours against Hugging Face VideoMAE.

Every configuration runs in its own fresh process (`python -m blockmae.bench.worker`), so each peak
memory is its own. Hugging Face `VideoMAEForPreTraining` gets the same config, weights, input, masks and
optimizer as our E2E model; the first step's losses must agree. The table gives clips/s and its ratio to
the baseline, step time relative to our E2E, peak memory, FLOPs per step and model FLOPs utilisation
(achieved FLOP/s over the machine's measured fp32 matmul FLOP/s).
"""

from __future__ import annotations

import time
from dataclasses import asdict

from .configurations import configurations, select
from .launch import run_worker
from .machine import describe_machine, machine, note_load_at_end
from .presets import preset as find_preset
from .publish import command_line, publish
from .report import format_report
from .summary import aggregate, summarise
from .text import MiB


def run(preset_name: str = "tiny", device: str = "auto", configs: str | None = None, quick: bool = False,
        repeats: int = 1, threads: int | None = None, batch: int | None = None, warmup: int | None = None,
        steps: int | None = None, sets: list[str] = (), compile: bool = True, flops: bool = True,
        in_process: bool = False, json_path: str | None = None, progress: bool = True, timer: str = "wall",
        malloc: str = "tuned") -> dict:
    """Measure every selected configuration of a preset; returns (and optionally writes) the results."""
    from ..devices import resolve_device  # here: it imports torch, which building the CLI's parser must not

    device = str(resolve_device(device, "--device"))  # a string: it travels to the workers as JSON
    preset = find_preset(preset_name)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    b = batch or (min(4, preset.batch[kind]) if quick else preset.batch[kind])
    w, s = (1, 2) if quick else preset.warmup_steps[kind]
    w, s = warmup if warmup is not None else w, steps if steps is not None else s
    rows = select(configurations(preset), configs)
    info = machine(kind)
    say = print if progress else (lambda *a, **k: None)
    say(describe_machine(info, threads))

    runs: dict[str, list[dict]] = {r.name: [] for r in rows}
    matmuls = []
    start = time.perf_counter()
    for rep in range(repeats):  # interleaved, so a slow spell on a shared machine hits every configuration alike
        spec = {"name": "matmul", "task": "matmul", "device": device, "threads": threads, "timer": timer,
                "n": 1024 if quick else None}
        matmuls.append(run_worker(spec, in_process))
        for r in rows:
            if r.compile and (not compile or (quick and configs in (None, "all", "levers"))):
                runs[r.name].append({"name": r.name, "skipped": "torch.compile off (--no-compile or --quick)"})
                continue
            spec = {**asdict(r), "config": preset.config, "overrides": list(preset.overrides) + list(sets)
                    + list(r.overrides), "batch": b, "warmup": w, "steps": s, "seed": 0, "device": device,
                    "threads": threads, "flops": flops, "timer": timer, "malloc": malloc}
            t0 = time.perf_counter()
            result = run_worker(spec, in_process)
            result.update(group=r.group, about=r.about)
            runs[r.name].append(result)
            if "error" in result:
                say(f"  [{rep + 1}/{repeats}] {r.name:<28} ERROR {result['error']}", flush=True)
            else:
                say(f"  [{rep + 1}/{repeats}] {r.name:<28} {result['clips_per_s']:9.2f} clips/s  "
                    f"step peak {result['step_bytes'] / MiB:8.1f} MiB   ({time.perf_counter() - t0:.0f} s)", flush=True)

    aggregated = []
    for r in rows:
        row = aggregate(runs[r.name])
        row.update(group=r.group, about=r.about)
        aggregated.append(row)
    good = [m for m in matmuls if "flop_per_s" in m]
    matmul = dict(good[0], flop_per_s=max(m["flop_per_s"] for m in good)) if good else None
    aggregated, check, targets = summarise(aggregated, matmul)
    note_load_at_end(info)
    results = {
        "machine": info, "preset": preset_name, "preset_about": preset.about,
        "settings": {"device": device, "batch": b, "warmup": w, "steps": s, "repeats": repeats, "threads": threads,
                     "timer": timer, "malloc": malloc if kind == "cpu" else None,
                     "quick": quick, "sets": list(sets), "in_process": in_process,
                     "command": command_line(),
                     "seconds": time.perf_counter() - start},
        "matmul": matmul, "loss_check": check, "rows": aggregated, "targets": targets, "runs": runs,
    }
    return publish(results, format_report(results), json_path, say)
