"""One benchmark configuration, measured in a fresh process so its peak memory is its own.

    python -m blockmae.bench.worker '<spec as JSON>'

prints one line `BLOCKMAE-BENCH-RESULT <result as JSON>` (the harness builds the spec; see `measure`).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time

import torch

from ..config import config_path, load_config
from ..devices import resolve_device
from ..regimes import REFERENCE, get_regime
from .probes import (PeakMemory, count_flops, live_tensor_peak, matmul_flops, release_free_memory, sync,
                     tune_glibc_malloc)
from .protocol import result_line
from .steps import (build_ours, hf_extract_step, hf_train_step, hf_twin, make_inputs, make_optimizer,
                    ours_extract_step, ours_train_step)


def periodic_monitors(cfg, impl: str, task: str, first: int, end: int) -> bool:
    """Our training step with monitors every m-th step (m > 1), and timed steps of both kinds."""
    every = cfg.train.monitor_every
    steps = range(first, end)
    return (impl == "ours" and task == "train" and every > 1 and any(i % every == 0 for i in steps)
            and any(i % every for i in steps))


def fitted_monitors(cfg, impl: str, task: str) -> bool:
    """Our E2E run whose monitors are fitted after training (`train.monitor_fit_steps`): after the two steps the
    loss check and the FLOP count read, every other step is a fitting step, so both kinds are warmed up and timed."""
    return impl == "ours" and task == "train" and cfg.train.monitor_fit_steps > 0


def measure(spec: dict) -> dict:
    """Measure one configuration. `spec` keys:

    name, impl (ours|hf), task (train|extract|matmul), regime, K, lean, compile, optimizer (engine|unfused),
    inference (extract: inference_mode instead of no_grad), config (built-in name or path; None: defaults),
    overrides (key=value list), batch, warmup, steps, seed, device, threads, flops (count FLOPs),
    timer (wall|cpu), malloc (CPU: tuned|default; see probes.tune_glibc_malloc), live (CPU: profile one more step
    for the peak of live tensor bytes, `probes.live_tensor_peak`; default true).
    """
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = resolve_device(spec.get("device", "auto"), "--device")
    out = {"name": spec["name"], "device": str(device), "threads": torch.get_num_threads()}
    if device.type == "cpu":
        out["malloc"] = "tuned" if spec.get("malloc", "tuned") == "tuned" and tune_glibc_malloc() else "default"
    if spec["task"] == "matmul":
        return out | matmul_flops(device, spec.get("n"), timer=spec.get("timer", "wall"))

    K = int(spec.get("K", 1))
    regime, task, impl = spec.get("regime", REFERENCE), spec["task"], spec["impl"]
    # the regime also sets the model's defaults (decoder masking)
    cfg = load_config(config_path(spec["config"]) if spec.get("config") else None,
                      list(spec.get("overrides", [])) + [f"model.partition={K}", f"train.regime={regime}"])
    seq = task == "train" and get_regime(regime).phased
    fitted = fitted_monitors(cfg, impl, task)

    def fit_step(i: int) -> bool:  # after the loss-check and FLOP-count steps, every other step fits
        return fitted and i > 1 and i % 2 == 1

    warmup, steps = max(int(spec["warmup"]), 1), max(int(spec["steps"]), 2 if fitted else 1)  # fitted: both kinds
    if spec.get("compile"):
        warmup += 2  # the first calls compile the forward and the backward graphs
    # Step schedule (the phase of each step): the first step gives the loss check, the next the FLOP count,
    # then warm-up, then the timed steps. Sequential: one counted step per phase, timed steps in every phase.
    if seq:
        per_phase = math.ceil(steps / K)
        prelude = [0] + list(range(K)) + [k for k in range(K) for _ in range(warmup - 1)]
        timed = [k for k in range(K) for _ in range(per_phase)]
    else:
        prelude = [0] * (1 + warmup)
        timed = [0] * steps
    schedule = prelude + timed

    model = build_ours(cfg, int(spec.get("seed", 0)), device)
    video, masks = make_inputs(model, cfg, int(spec["batch"]), len(schedule), int(spec.get("seed", 0)), device)
    out |= {"impl": impl, "task": task, "regime": regime, "K": K, "partition": model.partition,
            "batch": int(spec["batch"]), "grid": list(model.grid), "tokens": model.embed.num_tokens,
            "visible": int((~masks[0][0]).sum()), "warmup": len(prelude), "timed_steps": len(timed),
            "amp": cfg.train.amp}

    if impl == "hf":
        net = hf_twin(model)
        out["hf_attn_implementation"] = getattr(net.config, "_attn_implementation", None)
        del model
        model = None
    else:
        net = model
    out["params"] = sum(p.numel() for p in net.parameters())

    if task == "train":
        optimizer = make_optimizer(net, spec.get("optimizer", "engine"))
        if impl == "hf":
            step = hf_train_step(net, optimizer, video, masks, amp=cfg.train.amp)
        else:
            step = ours_train_step(net, optimizer, video, masks, regime, bool(spec.get("lean", True)),
                                   phase_of=lambda i: schedule[i], monitor_every=cfg.train.monitor_every,
                                   amp=cfg.train.amp, fitting=fit_step)
    elif task == "extract":
        inference = bool(spec.get("inference", False))
        step = (hf_extract_step if impl == "hf" else ours_extract_step)(net, video, inference)
    else:
        raise ValueError(f"task '{task}' must be train, extract or matmul")

    # 1. the first step: losses before any update (the Hugging Face check compares these)
    out["first_losses"] = step(0)
    # 2. FLOPs of one step (per phase when sequential; eager, before any compile); these steps also warm up
    counted = list(range(1, 1 + K)) if seq else [1]
    flops = [count_flops(lambda i=i: step(i)) if spec.get("flops", True) else (step(i), 0)[1] for i in counted]
    out["flops_per_step"] = sum(flops) / len(flops)
    if seq:
        out["flops_per_phase"] = flops
    rest = range(1 + len(counted), len(prelude))
    if spec.get("compile"):
        start = time.perf_counter()
        model.compile_layers()
        for i in rest[:2]:
            step(i)
        out["compile_s"] = time.perf_counter() - start  # the two steps that compile, included
        rest = rest[2:]
    for i in rest:
        step(i)

    # 3. timed steps, from a resting state (weights and optimizer state alive, no gradients)
    memory = PeakMemory(device)
    if device.type == "cpu":
        release_free_memory()
    memory.rest()
    times, cpu_times = [], []
    for i in range(len(prelude), len(schedule)):
        sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        step(i)
        sync(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    peak = memory.peak()
    if device.type == "cpu" and spec.get("live", True):  # one more step (the last one again), profiled
        last = len(schedule) - 1
        out["live_step_bytes"] = live_tensor_peak(lambda: step(last))
    timer = spec.get("timer", "wall")
    if timer not in ("wall", "cpu"):
        raise ValueError(f"timer '{timer}' must be wall or cpu")
    # cpu: the process's CPU time, immune to waiting for a core another process holds (one thread only)
    chosen = cpu_times if timer == "cpu" else times

    if seq:  # every phase equally long, as the engine's default equal split: mean over phases
        out["phase_step_s"] = [statistics.median([t for t, ph in zip(chosen, timed) if ph == k]) for k in range(K)]
        out["step_s"] = statistics.fmean(out["phase_step_s"])
    elif periodic_monitors(cfg, impl, task, len(prelude), len(schedule)):
        # monitors every m-th step: a period is one step with them and m-1 without, so the mean step over a period
        # (the median of each kind, weighted), not the median of all, is what a run pays
        every, idx = cfg.train.monitor_every, range(len(prelude), len(schedule))
        out["monitor_step_s"] = statistics.median([t for i, t in zip(idx, chosen) if i % every == 0])
        out["off_step_s"] = statistics.median([t for i, t in zip(idx, chosen) if i % every])
        out["step_s"] = (out["monitor_step_s"] + (every - 1) * out["off_step_s"]) / every
    elif fitted:
        # a run of max_steps training steps, then monitor_fit_steps fitting steps: its mean cost per training step
        idx, t = range(len(prelude), len(schedule)), cfg.train
        out["fit_step_s"] = statistics.median([s for i, s in zip(idx, chosen) if fit_step(i)])
        out["off_step_s"] = statistics.median([s for i, s in zip(idx, chosen) if not fit_step(i)])
        out["fit_share"] = t.monitor_fit_steps / t.max_steps
        out["step_s"] = out["off_step_s"] + out["fit_share"] * out["fit_step_s"]
    else:
        out["step_s"] = statistics.median(chosen)
    out |= {"timer": timer, "step_times": times, "cpu_step_times": cpu_times,
            "clips_per_s": out["batch"] / out["step_s"], "peak_bytes": peak,
            "resting_bytes": memory.resting, "step_bytes": max(peak - memory.resting, 0),
            "memory_method": memory.method}
    if device.type == "cuda":  # allocated bytes are live tensors already
        out["live_step_bytes"] = out["step_bytes"]
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m blockmae.bench.worker '<spec as JSON>'")
    result = measure(json.loads(argv[0]))
    print(result_line(result), flush=True)


if __name__ == "__main__":
    main()
