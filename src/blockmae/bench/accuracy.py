"""`blockmae bench --accuracy`: what each lever that makes simultaneous K=4 cheaper costs in accuracy.

For one preset config (default: the bench's `tiny`, `configs/tiny-scenes.yaml`, with its own schedule), pretrain
simultaneous K=4 once per lever (no lever, decoder masking 0.5 / 0.75, narrower decoders, both) through the
public engine (`blockmae.train.engine.pretrain`), then fit the analysis suite's linear probe
(`blockmae.eval.probe_unit` on `analysis.extraction.FeatureStore` features: standardise, multinomial
logistic regression, fit on train, top-1 on test) on the final block's pooled features, per target. Each
lever's speed comes from the same pretraining (median clips/s over the logged intervals, the first left out)
and, with `--bench JSON`, from the benchmark harness's isolated step timings. Same seed, data and masks for every lever.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from ..regimes import DEFAULT
from .machine import describe_machine, machine
from .presets import PRESETS
from .publish import command_line, publish
from .text import cell

LEVER_NAMES = ("none", "dmask0.5", "dmask0.75", "narrow", "dmask0.5-narrow")


def lever_overrides(preset_name: str = "tiny") -> dict[str, tuple[str, ...]]:
    """Each lever's config overrides (the same as the harness's `sim-K4-lean-*` rows)."""
    narrow = PRESETS[preset_name].narrow
    full = ("model.decoder.mask_ratio=0.0",)  # no lever: the paper's decoders
    levers = {"none": full, "dmask0.5": ("model.decoder.mask_ratio=0.5",),
              "dmask0.75": ("model.decoder.mask_ratio=0.75",), "narrow": full + narrow,
              "dmask0.5-narrow": ("model.decoder.mask_ratio=0.5",) + narrow}
    if PRESETS[preset_name].shallow:
        levers["shallow"] = full + PRESETS[preset_name].shallow
    return levers


def bench_row_name(lever: str) -> str:
    """The harness row that times `lever` (memory-lean simultaneous K=4; decoder masking 0.5 is the default)."""
    return {"none": "sim-K4-lean-dmask0", "dmask0.5": "sim-K4-lean"}.get(lever, f"sim-K4-lean-{lever}")


def _lever_config(preset_name: str, lever: str, sets: list[str], seed: int):
    from ..config import config_path, load_config

    preset = PRESETS[preset_name]
    overrides = (list(preset.overrides) + [f"train.regime={DEFAULT}", "model.partition=4", f"train.seed={seed}"]
                 + list(sets) + list(lever_overrides(preset_name)[lever]))
    return load_config(config_path(preset.config) if preset.config else None, overrides)


def pretraining_speed(run_dir: Path) -> float | None:
    """Median clips/s over the run's logged intervals, the first (start-up) left out when there are others."""
    from ..train.logging import read_log

    rates = [row["clips_per_s"] for row in read_log(run_dir) if row.get("clips_per_s")]
    rates = rates[1:] if len(rates) > 1 else rates
    return statistics.median(rates) if rates else None


def final_block_probe(run_dir: Path, data: str, work: Path, progress: bool = False) -> dict[str, float]:
    """{target: accuracy, ..., "mean"} of the analysis suite's linear probe on the final block's features."""
    from ..analysis.extraction import FeatureStore
    from ..analysis.options import Options
    from ..analysis.sources import describe
    from ..eval import probe_unit

    store = FeatureStore(work, Options(layers=False, occlusion=False, progress=progress))
    source = describe(str(run_dir))
    model = source.model()
    test = store.features(source, model, data, "test")
    train = store.features(source, model, data, "train")
    return probe_unit(test, train, lambda f: f.blocks(model.partition)[-1])


def run_accuracy(preset_name: str = "tiny", levers: list[str] | None = None, sets: list[str] = (),
                 data: str = "digits", seeds: list[int] = (0,), runs: str | Path | None = None,
                 json_path: str | None = None, bench_json: str | None = None, threads: int | None = None,
                 progress: bool = True) -> dict:
    """Pretrain simultaneous K=4 with every lever (and seed), probe the final block; returns the results."""
    import tempfile

    import torch

    from ..devices import resolve_device
    from ..train.engine import pretrain

    known = lever_overrides(preset_name)
    levers = list(levers or [n for n in LEVER_NAMES if n in known])
    unknown = [n for n in levers if n not in known]
    if unknown:
        raise SystemExit(f"unknown lever(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if "none" not in levers:
        levers.insert(0, "none")  # every delta is against no lever
    if threads:
        torch.set_num_threads(threads)
    say = print if progress else (lambda *a, **k: None)
    root = Path(runs) if runs else Path(tempfile.mkdtemp(prefix="blockmae-levers-"))
    info = machine(resolve_device("auto").type)  # the device `auto` picks, as the presets train on
    bench = json.loads(Path(bench_json).read_text()) if bench_json else None
    bench_rows = {r["name"]: r for r in bench["rows"]} if bench else {}

    per_run = []
    started = time.perf_counter()
    for seed in seeds:
        for lever in levers:
            cfg = _lever_config(preset_name, lever, list(sets), seed)
            if not progress:
                cfg.train.progress = False
            out = root / f"{lever}-seed{seed}"
            say(f"[{lever}, seed {seed}] pretraining {cfg.train.max_steps} steps -> {out}", flush=True)
            reused = (out / "summary.json").exists()  # a finished run is resumed at its end: nothing trains again
            t0 = time.perf_counter()
            summary = pretrain(cfg, out)
            t1 = time.perf_counter()
            accs = final_block_probe(out, data, root / "analysis", progress=progress)
            say(f"[{lever}, seed {seed}] probe {' '.join(f'{k} {v:.3f}' for k, v in accs.items())} "
                f"(pretrain {t1 - t0:.0f} s, probe {time.perf_counter() - t1:.0f} s)", flush=True)
            per_run.append({"lever": lever, "seed": seed, "overrides": list(known[lever]), "run_dir": str(out),
                            "steps": summary["steps"], "reused": reused, "pretrain_s": None if reused else t1 - t0, "clips_per_s": pretraining_speed(out),
                            "last_losses": summary["last_losses"], "held_out_losses": summary["held_out"]["losses"],
                            "probe": accs})

    rows = summarise_levers(per_run, levers, bench_rows)
    cfg = _lever_config(preset_name, "none", list(sets), seeds[0])
    results = {
        "machine": info, "preset": preset_name, "data": data, "seeds": list(seeds),
        "settings": {"sets": list(sets), "threads": threads or torch.get_num_threads(), "regime": DEFAULT,
                     "partition": 4, "max_steps": cfg.train.max_steps, "batch_size": cfg.train.batch_size,
                     "bench_json": bench_json, "runs": str(root), "seconds": time.perf_counter() - started,
                     "command": command_line()},
        "rows": rows, "runs": per_run,
    }
    return publish(results, format_accuracy(results), json_path, say)


def summarise_levers(per_run: list[dict], levers: list[str], bench_rows: dict | None = None) -> list[dict]:
    """One row per lever: means over seeds; speed and accuracy relative to no lever (accuracy in pp)."""
    bench_rows = bench_rows or {}
    rows = []
    for lever in levers:
        runs = [r for r in per_run if r["lever"] == lever]
        targets = list(runs[0]["probe"])
        probe = {t: statistics.fmean(r["probe"][t] for r in runs) for t in targets}
        speeds = [r["clips_per_s"] for r in runs if r["clips_per_s"]]
        row = {"lever": lever, "overrides": runs[0]["overrides"], "seeds": [r["seed"] for r in runs],
               "clips_per_s": statistics.fmean(speeds) if speeds else None, "probe": probe,
               "probe_per_seed": [r["probe"]["mean"] for r in runs],
               "held_out_losses": [statistics.fmean(v) for v in zip(*(r["held_out_losses"] for r in runs))]}
        b = bench_rows.get(bench_row_name(lever))
        row["bench_time_x_e2e"] = b.get("time_x_e2e") if b else None
        row["bench_step_s"] = b.get("step_s") if b else None
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["time_x_none"] = (base["clips_per_s"] / row["clips_per_s"]
                              if base["clips_per_s"] and row["clips_per_s"] else None)
        row["bench_time_x_none"] = (row["bench_step_s"] / base["bench_step_s"]
                                    if row["bench_step_s"] and base["bench_step_s"] else None)
        row["delta_pp"] = {t: 100 * (row["probe"][t] - base["probe"][t]) for t in row["probe"]}
    return rows


def format_accuracy(results: dict) -> str:
    s = results["settings"]
    rows = results["rows"]
    targets = list(rows[0]["probe"])
    lines = [describe_machine(results["machine"], s["threads"]),
             f"preset {results['preset']}: simultaneous K=4 (memory-lean), {s['max_steps']} steps at batch "
             f"{s['batch_size']}, seed(s) {', '.join(map(str, results['seeds']))}"
             + (f", overrides {' '.join(s['sets'])}" if s["sets"] else ""),
             f"probe: final block, linear (standardise + logistic regression), fit on {results['data']} train, "
             f"top-1 on {results['data']} test", ""]
    head = (f"{'lever':<16} {'time x none':>11} {'bench x e2e':>11} "
            + " ".join(f"{t:>9}" for t in targets) + f" {'d mean pp':>9}")
    lines += [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['lever']:<16} {cell(r['time_x_none'], '11.2f')} {cell(r['bench_time_x_e2e'], '11.2f')} "
                     + " ".join(f"{r['probe'][t]:9.3f}" for t in targets) + f" {r['delta_pp']['mean']:+9.1f}")
    lines.append("")
    lines.append("time x none: pretraining time per clip relative to no lever (median clips/s over logged intervals, "
                 "data loading included);")
    lines.append("bench x e2e: the harness's isolated step time relative to ours E2E (--bench JSON; '-' without); "
                 "accuracies are fractions, means over seeds;")
    lines.append("d mean pp: change of the mean probe accuracy against no lever, in percentage points.")
    if len(results["seeds"]) > 1:
        spread = [max(r["probe_per_seed"]) - min(r["probe_per_seed"]) for r in rows]
        lines.append("seed spread of the mean accuracy (max - min over seeds): "
                     + ", ".join(f"{r['lever']} {100 * d:.1f} pp" for r, d in zip(rows, spread)))
    return "\n".join(lines)


def run_from_args(args) -> dict:
    levers = [n.strip() for n in args.levers.split(",")] if args.levers else None
    seeds = [int(s) for s in str(args.seeds).split(",")]
    return run_accuracy(args.preset, levers, args.sets, args.probe_data, seeds, args.runs, args.json_path,
                        args.bench_json, args.threads)
