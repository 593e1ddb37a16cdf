"""`blockmae bench`: training and extraction throughput and peak memory, ours against Hugging Face VideoMAE.

Every configuration runs in its own fresh process (`python -m blockmae.bench.worker`), so each peak
memory is its own. Hugging Face `VideoMAEForPreTraining` gets the same config, weights, input, masks and
optimizer as our E2E model; the first step's losses must agree. The table gives clips/s and its ratio to
the baseline, step time relative to our E2E, peak memory, FLOPs per step and model FLOPs utilisation
(achieved FLOP/s over the machine's measured fp32 matmul FLOP/s).
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .common import LOSS_TOLERANCE, MARKER, command_line, first_losses_match, publish

MiB = 2 ** 20


@dataclass(frozen=True)
class Preset:
    config: str | None  # built-in config name or YAML path; None: the defaults
    overrides: tuple[str, ...]
    batch: dict  # per device type
    warmup_steps: dict  # per device type: (warm-up, timed)
    narrow: tuple[str, ...]  # lever: narrower stage decoders
    shallow: tuple[str, ...] | None  # lever: shallower lower-stage decoders (None: already one layer)
    about: str


PRESETS = {
    "tiny": Preset(
        "tiny", (), {"cpu": 32, "cuda": 256}, {"cpu": (2, 8), "cuda": (5, 20)},
        narrow=("model.decoder.width=32",), shallow=None,
        about="the tiny demo preset (configs/tiny.yaml): 12 x 96-d, 8 x 32 x 32 clips, 2 x 4 x 4 tubelets, "
              "decoders 1 x 64-d"),
    "deit-s": Preset(
        None, ("model.size=vit-small", "model.frames=16", "model.image_size=128", "model.tubelet=2",
               "model.patch=8"),
        {"cpu": 2, "cuda": 32}, {"cpu": (1, 3), "cuda": (5, 20)},
        narrow=("model.decoder.width=96",), shallow=("model.decoder.depth=[1,1,1,4]",),
        about="DeiT-S (12 x 384-d, 6 heads), 16 x 128 x 128 clips, 2 x 8 x 8 tubelets (the paper's), "
              "VideoMAE-S decoders 4 x 192-d"),
}


@dataclass(frozen=True)
class Bench:
    """One configuration (a row of the table)."""
    name: str
    impl: str = "ours"  # ours | hf
    task: str = "train"  # train | extract
    regime: str = "e2e"
    K: int = 1
    lean: bool = True  # memory-lean step (backward per stage); the engine's default
    overrides: tuple[str, ...] = ()
    compile: bool = False
    optimizer: str = "engine"
    inference: bool = False
    group: str = "core"  # core | lever
    about: str = ""


def configurations(preset: Preset) -> list[Bench]:
    rows = [
        Bench("hf", impl="hf", about="Hugging Face VideoMAEForPreTraining (baseline)"),
        Bench("e2e", about="ours, E2E, one decoder: the same model as the baseline"),
        Bench("e2e-K4-monitors", K=4, about="ours, E2E with 4 stage decoders as monitors (the paper's E2E)"),
        Bench("sim-K4", regime="simultaneous", K=4, lean=False, about="simultaneous K=4, all graphs alive"),
        Bench("sim-K4-lean", regime="simultaneous", K=4, about="simultaneous K=4, memory-lean (default)"),
        Bench("sim-K6", regime="simultaneous", K=6, lean=False, about="simultaneous K=6, all graphs alive"),
        Bench("sim-K6-lean", regime="simultaneous", K=6, about="simultaneous K=6, memory-lean (default)"),
        Bench("seq-K4", regime="sequential", K=4, about="sequential K=4, mean over the 4 phases"),
        Bench("extract-hf", impl="hf", task="extract", about="Hugging Face hidden states, all layers, no_grad"),
        Bench("extract", task="extract", about="ours encode(at='layers'), no_grad (as eval/features.py)"),
        Bench("extract-inference", task="extract", inference=True, about="ours, torch.inference_mode"),
    ]
    lean4 = Bench("", regime="simultaneous", K=4, group="lever")
    levers = [
        replace(lean4, name="hf-adamw-unfused", impl="hf", regime="e2e", K=1, optimizer="unfused",
                about="Hugging Face with PyTorch's default AdamW (no fused kernel), as `torch.optim.AdamW(...)` gives"),
        replace(lean4, name="e2e-adamw-unfused", regime="e2e", K=1, optimizer="unfused",
                about="ours E2E with PyTorch's default AdamW (the engine uses the fused kernel)"),
        replace(lean4, name="e2e-compile", regime="e2e", K=1, compile=True, about="E2E, torch.compile per layer"),
        replace(lean4, name="sim-K4-lean-compile", compile=True, about="torch.compile per layer/decoder"),
        replace(lean4, name="sim-K4-lean-dmask0.5", overrides=("model.decoder.mask_ratio=0.5",),
                about="decoder masking: each decoder reconstructs 50% of the hidden tubelets"),
        replace(lean4, name="sim-K4-lean-dmask0.75", overrides=("model.decoder.mask_ratio=0.75",),
                about="decoder masking: 25% of the hidden tubelets"),
        replace(lean4, name="sim-K4-lean-narrow", overrides=preset.narrow,
                about="narrower decoders: " + " ".join(preset.narrow)),
    ]
    if preset.shallow:
        levers.append(replace(lean4, name="sim-K4-lean-shallow", overrides=preset.shallow,
                              about="shallower lower-stage decoders: " + " ".join(preset.shallow)))
    levers.append(replace(lean4, name="sim-K4-lean-dmask0.5-narrow",
                          overrides=("model.decoder.mask_ratio=0.5",) + preset.narrow,
                          about="decoder masking 0.5 and narrower decoders"))
    return rows + levers


def select(rows: list[Bench], names: str | None) -> list[Bench]:
    if not names or names == "all":
        return rows
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {r.name for r in rows} | {"core", "levers"}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {', '.join(unknown)}; choose from core, levers, "
                         + ", ".join(r.name for r in rows))
    return [r for r in rows if r.name in wanted or (r.group == "core" and "core" in wanted)
            or (r.group == "lever" and "levers" in wanted)]


# ----------------------------------------------------------------------------- running

def machine(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "device": device, "torch_threads_default": torch.get_num_threads()}
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except ImportError:
        info["transformers"] = None
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_start"] = os.getloadavg()[0]
    return info


def run_worker(spec: dict, in_process: bool = False, timeout: float | None = None) -> dict:
    """Measure `spec` in a fresh Python process (or in this one, for tests: memory then is not isolated)."""
    if in_process:
        from .worker import measure
        try:
            return measure(spec)
        except Exception as e:  # noqa: BLE001 - a failing configuration is reported, not fatal
            return {"name": spec["name"], "error": f"{type(e).__name__}: {e}"}
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # so a source checkout works without installing
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", "blockmae.bench.worker", json.dumps(spec)], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"name": spec["name"], "error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"name": spec["name"], "error": f"worker exited with {proc.returncode}: " + " | ".join(tail)}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(runs: list[dict]) -> dict:
    """Repeats of one configuration -> one row (medians; spread kept)."""
    ok = [r for r in runs if "error" not in r and "skipped" not in r]
    if not ok:
        return dict(runs[0])
    row = {k: v for k, v in ok[0].items() if k not in ("step_times",)}
    for key in ("step_s", "clips_per_s", "peak_bytes", "resting_bytes", "step_bytes", "live_step_bytes",
                "flops_per_step"):
        row[key] = _median([r.get(key) for r in ok])
    row["clips_per_s_runs"] = [r["clips_per_s"] for r in ok]
    row["repeats"] = len(ok)
    return row


def summarise(rows: list[dict], matmul: dict | None) -> tuple[list[dict], dict | None, list[dict]]:
    """Add ratio columns, the loss check and the targets' verdicts."""
    by = {r["name"]: r for r in rows}

    def ok(name):
        return name in by and "clips_per_s" in by[name]

    peak_rate = matmul["flop_per_s"] if matmul and "flop_per_s" in matmul else None
    for r in rows:
        if "clips_per_s" not in r:
            continue
        base = "extract-hf" if r.get("task") == "extract" else "hf"
        r["baseline"] = base
        r["x_baseline"] = r["clips_per_s"] / by[base]["clips_per_s"] if ok(base) else None
        r["mem_x_baseline"] = (r["step_bytes"] / by[base]["step_bytes"]
                               if ok(base) and by[base]["step_bytes"] else None)
        r["live_x_baseline"] = (r["live_step_bytes"] / by[base]["live_step_bytes"]
                                if ok(base) and r.get("live_step_bytes") and by[base].get("live_step_bytes") else None)
        r["time_x_e2e"] = r["step_s"] / by["e2e"]["step_s"] if ok("e2e") and r.get("task") == "train" else None
        r["achieved_flop_per_s"] = r["flops_per_step"] / r["step_s"] if r.get("flops_per_step") else None
        r["mfu"] = r["achieved_flop_per_s"] / peak_rate if peak_rate and r["achieved_flop_per_s"] else None

    check = None
    if ok("hf") and ok("e2e"):
        check = first_losses_match(by["hf"]["first_losses"][0], by["e2e"]["first_losses"][0], LOSS_TOLERANCE)

    targets = []
    if ok("hf") and ok("e2e"):
        x = by["e2e"]["x_baseline"]
        detail = f"{x:.2f}x (both with the engine's AdamW); first-step loss |diff| {check['abs_diff']:.1e}"
        if ok("hf-adamw-unfused"):
            detail += (f"; against Hugging Face with PyTorch's default AdamW "
                       f"{by['e2e']['clips_per_s'] / by['hf-adamw-unfused']['clips_per_s']:.2f}x")
        targets.append({"target": "ours e2e clips/s >= 1.3x Hugging Face, identical loss", "value": x,
                        "met": x >= 1.3 and bool(check and check["ok"]), "detail": detail})
    def memory_target(target: str, a: dict, b: dict, limit: float) -> None:
        """Verdict on live tensors (CUDA: allocated; CPU: the profiler's allocator records) where measured,
        else on the step's resident-set peak; every measure in the detail."""
        rss = a["step_bytes"] / b["step_bytes"] if b["step_bytes"] else None
        live = a["live_step_bytes"] / b["live_step_bytes"] if a.get("live_step_bytes") and b.get("live_step_bytes") else None
        whole = a["peak_bytes"] / b["peak_bytes"]
        value = live if live is not None else rss
        parts = ([f"live tensors {live:.2f}x"] if live is not None and a["device"] == "cpu" else []) + \
                [f"step peak ({'allocated' if a['device'].startswith('cuda') else 'RSS'}) {rss:.2f}x" if rss else "n/a",
                 f"whole-process peak {whole:.2f}x"]
        targets.append({"target": target, "value": value, "met": value is not None and value <= limit,
                        "rss_value": rss, "live_value": live, "detail": "; ".join(parts)})

    if ok("sim-K4") and ok("sim-K4-lean"):
        memory_target("memory-lean sim K=4 peak <= 0.6x standard sim K=4", by["sim-K4-lean"], by["sim-K4"], 0.6)
        if ok("e2e"):
            memory_target("memory-lean sim K=4 peak <= e2e peak (same batch)", by["sim-K4-lean"], by["e2e"], 1.0)
    if ok("e2e"):
        sims = [r for r in rows if r["name"].startswith("sim-K4") and r.get("time_x_e2e") is not None]
        for r in sims:
            if r["name"] in ("sim-K4", "sim-K4-lean"):
                targets.append({"target": f"{r['name']} step time <= 1.5x e2e", "value": r["time_x_e2e"],
                                "met": r["time_x_e2e"] <= 1.5, "detail": f"{r['time_x_e2e']:.2f}x"})
        levers = [r for r in sims if r.get("group") == "lever"]
        if levers:
            best = min(levers, key=lambda r: r["time_x_e2e"])
            targets.append({"target": "sim K=4 step time <= 1.5x e2e with a lever", "value": best["time_x_e2e"],
                            "met": best["time_x_e2e"] <= 1.5,
                            "detail": f"best: {best['name']} {best['time_x_e2e']:.2f}x"})
    return rows, check, targets


def run(preset_name: str = "tiny", device: str = "auto", configs: str | None = None, quick: bool = False,
        repeats: int = 1, threads: int | None = None, batch: int | None = None, warmup: int | None = None,
        steps: int | None = None, sets: list[str] = (), compile: bool = True, flops: bool = True,
        in_process: bool = False, json_path: str | None = None, progress: bool = True, timer: str = "wall",
        malloc: str = "tuned") -> dict:
    """Measure every selected configuration of a preset; returns (and optionally writes) the results."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if preset_name not in PRESETS:
        raise SystemExit(f"unknown preset '{preset_name}'; choose from {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
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
    for rep in range(repeats):
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
    if hasattr(os, "getloadavg"):
        info["load_average_1min_at_end"] = os.getloadavg()[0]
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


# ----------------------------------------------------------------------------- the report

def describe_machine(info: dict, threads: int | None = None) -> str:
    dev = info.get("gpu") or info["cpu"]
    return (f"machine: {info['cpu']}, {info['cores']} cores; device {info['device']}"
            + (f" ({dev})" if info.get("gpu") else "")
            + f"; torch {info['torch']}, transformers {info.get('transformers')}, Python {info['python']}; "
            + f"torch threads {threads or info['torch_threads_default']}"
            + (f"; load average {info['load_average_1min_at_start']:.1f} at start" if "load_average_1min_at_start" in info else ""))


def _fmt(v, spec: str, none: str = "-") -> str:
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 0
    return f"{none:>{width}}" if v is None else format(v, spec)


def format_report(results: dict) -> str:
    s = results["settings"]
    lines = [describe_machine(results["machine"], s["threads"]),
             f"preset {results['preset']}: {results['preset_about']}",
             f"batch {s['batch']}, {s['warmup']} warm-up + {s['steps']} timed steps, {s['repeats']} repeat(s), "
             f"{s.get('timer', 'wall')} time" + (f", malloc {s['malloc']}" if s.get("malloc") else "")
             + (" (quick)" if s["quick"] else "") + (f", overrides {' '.join(s['sets'])}" if s["sets"] else ""), ""]
    head = (f"{'config':<28} {'clips/s':>9} {'x base':>7} {'step s':>8} {'x e2e':>6} {'peak MiB':>9} "
            f"{'step MiB':>9} {'live MiB':>9} {'x base':>7} {'GFLOP':>8} {'MFU':>6}  first loss")
    lines += [head, "-" * len(head)]
    for r in results["rows"]:
        if "clips_per_s" not in r:
            lines.append(f"{r['name']:<28} {r.get('error') or r.get('skipped')}")
            continue
        loss = r.get("first_losses") or []
        loss_s = " ".join(f"{v:.5f}" for v in loss if v is not None) if r.get("task") == "train" else ""
        lines.append(
            f"{r['name']:<28} {r['clips_per_s']:9.2f} {_fmt(r.get('x_baseline'), '7.2f')} {r['step_s']:8.3f} "
            f"{_fmt(r.get('time_x_e2e'), '6.2f')} {r['peak_bytes'] / MiB:9.1f} {r['step_bytes'] / MiB:9.1f} "
            f"{_fmt(r['live_step_bytes'] / MiB if r.get('live_step_bytes') else None, '9.1f')} "
            f"{_fmt(r.get('live_x_baseline') or r.get('mem_x_baseline'), '7.2f')} {r['flops_per_step'] / 1e9:8.2f} "
            f"{_fmt(r.get('mfu'), '6.1%')}  {loss_s}")
    lines.append("")
    lines.append("x base: clips/s (or live step memory) relative to the baseline (hf; extract-hf for extraction rows); "
                 "x e2e: step time relative to ours e2e;")
    lines.append("peak: whole process (RSS on CPU, allocated on CUDA); step: its peak above the resting state "
                 "(weights + optimizer state);")
    lines.append("live: peak of live tensor bytes in one step above the resting state (CPU: profiler allocator records, "
                 "no heap retention; CUDA: = step); GFLOP per step (matmul/conv/attention);")
    m = results.get("matmul")
    if m:
        lines.append(f"MFU: achieved FLOP/s / measured fp32 matmul rate {m['flop_per_s'] / 1e9:.1f} GFLOP/s "
                     f"({m['n']} x {m['n']}, {m.get('timer', 'wall')} time).")
    c = results.get("loss_check")
    if c:
        lines.append(f"loss check (first step, same weights/input/mask): Hugging Face {c['hf']:.6f}, ours {c['ours']:.6f}, "
                     f"|diff| {c['abs_diff']:.1e} {'OK' if c['ok'] else 'MISMATCH'} (tolerance {c['tolerance']:g})")
    if results["targets"]:
        lines.append("")
        lines.append("targets:")
        for t in results["targets"]:
            lines.append(f"  [{'met' if t['met'] else 'NOT met'}] {t['target']}: {t['detail']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line

EXAMPLE = ("blockmae bench --preset tiny --threads 1 --repeats 3 --json bench-tiny.json\n"
           "  blockmae bench --accuracy --bench bench-tiny.json --json levers-tiny.json\n"
           "  blockmae bench --pipeline --stages 2 --steps 60 --json pipeline-tiny.json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", choices=list(PRESETS),
                   help="tiny: the demo preset; deit-s: DeiT-S, 16 x 128 x 128, 2 x 8 x 8 tubelets")
    p.add_argument("--configs", default="all",
                   help="comma-separated configuration names, or core / levers / all (default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quick", action="store_true", help="batch <= 4, 1 warm-up + 2 timed steps, no torch.compile rows")
    p.add_argument("--repeats", type=int, default=1, help="run the whole list this many times (interleaved); medians")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's choice)")
    p.add_argument("--batch", type=int, default=None, help="clips per step (default: the preset's for the device)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (after the loss-check and FLOP-count steps)")
    p.add_argument("--steps", type=int, default=None, help="timed steps")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override applied to every configuration (repeatable), e.g. model.depth=6")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows")
    p.add_argument("--no-flops", dest="flops", action="store_false", help="skip FLOP counting")
    p.add_argument("--timer", choices=["wall", "cpu"], default="wall",
                   help="step time: wall clock (default), or the process's CPU time, which a busy shared machine "
                        "does not inflate (use with --threads 1)")
    p.add_argument("--malloc", choices=["tuned", "default"], default="tuned",
                   help="CPU: glibc malloc keeps freed memory for reuse (tuned, default; as jemalloc would) or "
                        "glibc's defaults, which re-fault large tensors every step")
    p.add_argument("--in-process", action="store_true",
                   help="measure in this process (debugging/tests; peak memory is then not per configuration)")
    p.add_argument("--json", dest="json_path", metavar="PATH", help="also write the results as JSON")
    a = p.add_argument_group("lever accuracy (--accuracy)")
    a.add_argument("--accuracy", action="store_true",
                   help="instead of timing: pretrain simultaneous K=4 with each lever (the preset's config and "
                        "schedule) and report the final-block probe accuracy per lever (benchmarks/lever_accuracy.py)")
    a.add_argument("--levers", default=None,
                   help="comma-separated: none,dmask0.5,dmask0.75,narrow,dmask0.5-narrow (default: all)")
    a.add_argument("--seeds", default="0", help="comma-separated pretraining seeds (default 0)")
    a.add_argument("--probe-data", default="digits", help="data spec with train and test splits for the probe")
    a.add_argument("--runs", default=None, metavar="DIR",
                   help="where the lever (or pipeline) runs go (default: a temporary folder); finished lever runs "
                        "there are reused, not trained again")
    a.add_argument("--bench", dest="bench_json", default=None, metavar="JSON",
                   help="a `blockmae bench --json` result of the same preset: adds its isolated step times")
    q = p.add_argument_group("pipeline throughput (--pipeline)")
    q.add_argument("--pipeline", action="store_true",
                   help="instead: train the preset (simultaneous) in one process, as a K-stage pipeline under "
                        "torchrun (dist.mode=pipeline) and data parallel on the same K processes (dist.mode=ddp), "
                        "with --steps steps (default 60), and report clips/s and where each rank's time goes")
    q.add_argument("--stages", type=int, default=2, help="K: pipeline stages = processes (default 2)")


def run_from_args(args: argparse.Namespace) -> dict:
    if getattr(args, "accuracy", False):
        from .accuracy import run_from_args as run_accuracy

        return run_accuracy(args)
    if getattr(args, "pipeline", False):
        from .pipeline import run_pipeline

        return run_pipeline(args.preset, args.stages, args.steps or 60, args.threads, args.batch, args.sets,
                            args.runs, args.device, args.json_path, repeats=args.repeats)
    return run(args.preset, args.device, args.configs, args.quick, args.repeats, args.threads, args.batch,
               args.warmup, args.steps, args.sets, args.compile, args.flops, args.in_process, args.json_path,
               timer=args.timer, malloc=args.malloc)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="blockmae bench", description=__doc__.split("\n")[0],
                                     epilog=f"example:\n  {EXAMPLE}", formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
