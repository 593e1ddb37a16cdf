"""`blockmae bench --accuracy`: what each lever that makes simultaneous K=4 cheaper costs in accuracy.

For one preset config (default: the bench's `tiny`, configs/tiny.yaml, with its own schedule), pretrain
simultaneous K=4 once per lever and seed (the paper's decoders, decoder masking 0.5 (the default) / 0.75, narrower
decoders, light lower-stage decoders, ...) through the public engine (`blockmae.study.train_all`, `--jobs` at a
time), then fit the analysis suite's linear probe (`blockmae.eval.probe_unit` on `analysis.extraction.FeatureStore`
features: standardise, multinomial logistic regression, fit on train, top-1 on test) on the final block's pooled
features, per target, beside random-init encoders of the same shape. Every lever is compared with a base lever
(default: the regime's default decoders), per target and paired by seed, by the non-inferiority rule of
`report.no_worse` at a margin (1 pp). Each lever's speed comes from the same pretraining (median clips/s over the
logged intervals, the first left out) and, with `--bench JSON`, from the benchmark harness's isolated step
timings; its held-out losses sit beside the trivial predictors' on the same clips. Same seeds, data and masks for
every lever. Beside them, unless `--no-e2e`, the same preset trained end to end per seed (the reference): each
lever's mean probe against E2E's, and what leaving the position-mean plateau (the escape step) costs each lever in
E2E's time: step counts alone hide that a cheaper step can need more of them.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from ..regimes import DEFAULT, REFERENCE
from .accuracy_table import ESCAPE_PCT, MARGIN_PP, format_accuracy
from .configurations import FULL
from .machine import machine
from .presets import PRESETS
from .publish import command_line, publish

LEVER_NAMES = ("none", "dmask0.5", "dmask0.75", "narrow", "dmask0.5-narrow", "shallow", "light-lower",
               "light-lower-dmask0.75")
BASE = "dmask0.5"  # the simultaneous regimes' default decoders (masking 0.5): what a cheaper setting must not fall behind
E2E = REFERENCE  # the reference run: the same preset trained end to end (its stage monitors on, as in the studies)


def lever_overrides(preset_name: str = "tiny") -> dict[str, tuple[str, ...]]:
    """Each lever's config overrides (the same as the harness's `sim-K4-lean-*` rows)."""
    p = PRESETS[preset_name]
    levers = {"none": (FULL,), "dmask0.5": ("model.decoder.mask_ratio=0.5",),
              "dmask0.75": ("model.decoder.mask_ratio=0.75",), "narrow": (FULL,) + p.narrow,
              "dmask0.5-narrow": ("model.decoder.mask_ratio=0.5",) + p.narrow}
    if p.shallow:
        levers["shallow"] = (FULL,) + p.shallow
    if p.light_lower:
        levers["light-lower"] = p.light_lower
    if p.light_lower_masked:
        levers["light-lower-dmask0.75"] = p.light_lower_masked
    return levers


def bench_row_name(lever: str) -> str:
    """The harness row that times `lever` (memory-lean simultaneous K=4; decoder masking 0.5 is the default)."""
    return {"none": "sim-K4-lean-dmask0", "dmask0.5": "sim-K4-lean"}.get(lever, f"sim-K4-lean-{lever}")


def _config_file(preset_name: str) -> str | None:
    from ..config import config_path

    name = PRESETS[preset_name].config
    return str(config_path(name)) if name else None


def _own_overrides(preset_name: str, lever: str) -> list[str]:
    """What sets `lever`'s runs apart (the E2E reference: its regime), as recorded with each run."""
    return [f"train.regime={E2E}"] if lever == E2E else list(lever_overrides(preset_name)[lever])


def _lever_overrides(preset_name: str, lever: str, sets: list[str], seed: int) -> list[str]:
    return (list(PRESETS[preset_name].overrides) + [f"train.regime={DEFAULT}", "model.partition=4",
                                                    f"train.seed={seed}"]
            + list(sets) + _own_overrides(preset_name, lever))  # later keys win: the reference's regime


def pretraining_speed(run_dir: Path) -> float | None:
    """Median clips/s over the run's logged intervals, the first (start-up) left out when there are others."""
    from ..train.logging import read_log

    rates = [row["clips_per_s"] for row in read_log(run_dir) if row.get("clips_per_s")]
    rates = rates[1:] if len(rates) > 1 else rates
    return statistics.median(rates) if rates else None


def final_block_probe(source, data: str, store) -> dict[str, float]:
    """{target: accuracy, ..., "mean"} of the analysis suite's linear probe on `source`'s final block's features."""
    from ..eval import probe_unit

    model = source.model()
    test = store.features(source, model, data, "test")
    train = store.features(source, model, data, "train")
    return probe_unit(test, train, lambda f: f.blocks(model.partition)[-1])


def escape_step(run_dir: Path, best_trivial: float, pct: float = ESCAPE_PCT) -> int | None:
    """The first logged step whose top-stage training loss lies `pct` % below the best trivial predictor's held-out
    loss: when the run left the position-mean plateau (None: not within its steps). Cheaper decoders change when
    this happens, so it is reported beside the final probe."""
    from ..train.logging import read_log

    bar = best_trivial * (1 - pct / 100)
    return next((row["step"] for row in read_log(run_dir)  # None: the top stage not training yet (sequential)
                 if row.get("losses") and row["losses"][-1] is not None and row["losses"][-1] < bar), None)


def probe_chance(source, data: str, store) -> dict[str, float]:
    """{target: the most frequent class's share of the probe's test clips, ..., "mean"}: what a probe that ignores
    the clip scores (features are cached, so this costs nothing after the first probe)."""
    from ..eval.protocols import chance_accuracies

    test = store.features(source, source.model(), data, "test")
    return chance_accuracies(test.labels, test.target_names)


def held_out(summary: dict) -> dict:
    """The run's top-stage held-out loss beside the best trivial predictor's on the same clips and masks."""
    h = summary["held_out"]
    name, best = min(h["baselines"].items(), key=lambda kv: kv[1])
    return {"losses": h["losses"], "top": h["losses"][-1], "best_trivial": best, "best_trivial_name": name,
            "margin_pct": 100 * (best - h["losses"][-1]) / best}


def run_accuracy(preset_name: str = "tiny", levers: list[str] | None = None, sets: list[str] = (),
                 data: str | None = None, seeds: list[int] = (0,), runs: str | Path | None = None,
                 json_path: str | None = None, bench_json: str | None = None, threads: int | None = None,
                 progress: bool = True, base: str = BASE, jobs: int = 1, random_floor: int = 3,
                 e2e: bool = True) -> dict:
    """Pretrain simultaneous K=4 with every lever (and seed), and with `e2e` the same preset end to end per seed as
    the reference; probe the final block; returns the results."""
    import tempfile

    import torch

    from ..analysis.extraction import FeatureStore
    from ..analysis.options import Options
    from ..analysis.sources import describe, random_floors
    from ..config import load_config
    from ..devices import resolve_device
    from ..study import Study, train_all

    known = lever_overrides(preset_name)
    levers = list(levers or [n for n in LEVER_NAMES if n in known])
    unknown = [n for n in levers + [base] if n not in known]
    if unknown:
        raise SystemExit(f"unknown lever(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    levers = [base] + [n for n in levers if n != base]  # every delta is against the base
    data = data or PRESETS[preset_name].probe_data
    if threads:
        torch.set_num_threads(threads)
    say = print if progress else (lambda *a, **k: None)
    root = Path(runs) if runs else Path(tempfile.mkdtemp(prefix="blockmae-levers-"))
    info = machine(resolve_device("auto").type)  # the device `auto` picks, as the presets train on
    bench = json.loads(Path(bench_json).read_text()) if bench_json else None
    bench_rows = {r["name"]: r for r in bench["rows"]} if bench else {}

    started = time.perf_counter()
    config = _config_file(preset_name)
    wanted = [(lever, seed, f"{lever}-seed{seed}") for seed in seeds for lever in levers + [E2E] * e2e]
    todo = [(name, _lever_overrides(preset_name, lever, list(sets), seed)) for lever, seed, name in wanted]
    reused = {name for name, _ in todo if (root / "runs" / name / "summary.json").exists()}
    summaries = train_all(Study(config, {}, [], jobs=jobs), root, jobs, progress=progress, runs=todo)
    trained_s = time.perf_counter() - started

    store = FeatureStore(root / "analysis", Options(layers=False, occlusion=False, progress=progress))
    per_run = []
    for lever, seed, name in wanted:
        out = root / "runs" / name
        accs = final_block_probe(describe(str(out)), data, store)
        say(f"[{lever}, seed {seed}] probe {' '.join(f'{k} {v:.3f}' for k, v in accs.items())}", flush=True)
        losses = held_out(summaries[name])
        per_run.append({"lever": lever, "seed": seed, "overrides": _own_overrides(preset_name, lever),
                        "run_dir": str(out),
                        "steps": summaries[name]["steps"], "reused": name in reused,
                        "clips_per_s": pretraining_speed(out), "last_losses": summaries[name]["last_losses"],
                        "held_out": losses, "escape_step": escape_step(out, losses["best_trivial"]), "probe": accs})
    first = describe(str(root / "runs" / wanted[0][2]))
    chance = probe_chance(first, data, store)
    randoms = random_floors(first, random_floor)
    floor = [final_block_probe(source, data, store) for source in randoms]

    reference = [r for r in per_run if r["lever"] == E2E]
    per_run = [r for r in per_run if r["lever"] != E2E]
    rows = summarise_levers(per_run, levers, bench_rows)
    cfg_train = load_config(config, todo[0][1]).train
    results = {
        "machine": info, "preset": preset_name, "data": data, "seeds": list(seeds), "base": base,
        "margin_pp": MARGIN_PP,
        "settings": {"sets": list(sets), "threads": threads or torch.get_num_threads(), "jobs": jobs,
                     "regime": DEFAULT, "partition": 4, "max_steps": cfg_train.max_steps,
                     "batch_size": cfg_train.batch_size, "bench_json": bench_json, "runs": str(root),
                     "training_s": trained_s, "seconds": time.perf_counter() - started, "command": command_line()},
        "chance": chance, "random_floor": {"encoders": len(floor), "probe": _mean_probe(floor), "per_encoder": floor},
        "rows": rows, "runs": per_run,
    }
    if reference:
        results["reference"] = summarise_e2e(reference, rows, cfg_train.max_steps)
    return publish(results, format_accuracy(results), json_path, say)


def _mean_probe(probes: list[dict[str, float]]) -> dict[str, float]:
    return {t: statistics.fmean(p[t] for p in probes) for t in probes[0]} if probes else {}


def _over_seeds(runs: list[dict]) -> dict:
    """One lever's (or the reference's) runs as means over seeds, with the per-seed values the comparisons pair."""
    targets = list(runs[0]["probe"])
    speeds = [r["clips_per_s"] for r in runs if r["clips_per_s"]]
    row = {"lever": runs[0]["lever"], "overrides": runs[0]["overrides"], "seeds": [r["seed"] for r in runs],
           "clips_per_s": statistics.fmean(speeds) if speeds else None,
           "probe": {t: statistics.fmean(r["probe"][t] for r in runs) for t in targets},
           "probe_per_seed": [r["probe"]["mean"] for r in runs]}
    if all("held_out" in r for r in runs):
        row["held_out_losses"] = [statistics.fmean(v) for v in zip(*(r["held_out"]["losses"] for r in runs))]
        row["held_out_margin_pct"] = statistics.fmean(r["held_out"]["margin_pct"] for r in runs)
        row["best_trivial"] = statistics.fmean(r["held_out"]["best_trivial"] for r in runs)
    if all("escape_step" in r for r in runs):  # per seed, None where the run stayed on the plateau
        row["escape_steps"] = [r["escape_step"] for r in runs]
    return row


def summarise_levers(per_run: list[dict], levers: list[str], bench_rows: dict | None = None) -> list[dict]:
    """One row per lever: means over seeds; speed relative to the base (the first lever), accuracy against it in
    pp per target (paired by seed, 95% t-interval) and the non-inferiority verdict at MARGIN_PP."""
    from ..report.no_worse import no_worse

    bench_rows = bench_rows or {}
    rows = []
    for lever in levers:
        row = _over_seeds([r for r in per_run if r["lever"] == lever])
        b = bench_rows.get(bench_row_name(lever))
        row["bench_time_x_e2e"] = b.get("time_x_e2e") if b else None
        row["bench_step_s"] = b.get("step_s") if b else None
        rows.append(row)
    base, base_runs = rows[0], {r["seed"]: r for r in per_run if r["lever"] == rows[0]["lever"]}
    for row in rows:
        row["time_x_base"] = (base["clips_per_s"] / row["clips_per_s"]
                              if base["clips_per_s"] and row["clips_per_s"] else None)
        row["bench_time_x_base"] = (row["bench_step_s"] / base["bench_step_s"]
                                    if row["bench_step_s"] and base["bench_step_s"] else None)
        row["delta_pp"] = {t: 100 * (row["probe"][t] - base["probe"][t]) for t in row["probe"]}
        if row is base:
            continue
        mine = [r for r in per_run if r["lever"] == row["lever"] and r["seed"] in base_runs]
        cells = {t: [100 * (r["probe"][t] - base_runs[r["seed"]]["probe"][t]) for r in mine]
                 for t in row["probe"] if t != "mean"}
        outcome, reason, diffs = no_worse(cells, MARGIN_PP)
        row["against_base"] = {"outcome": outcome, "reason": reason,
                               "per_target": {t: d.as_dict() for t, d in diffs.items()}}
    return rows


def escape_time_x_e2e(lever_steps: list, e2e_steps: list, step_x_e2e: float | None, max_steps: int) -> dict:
    """What leaving the plateau costs a lever in E2E's time, per seed: (the lever's escape step x its step time) /
    (E2E's escape step x E2E's step time), step times from the harness (`step_x_e2e`: the lever's relative to E2E's).
    A lever seed still on the plateau counts its whole run, so the mean over seeds is then only a lower bound."""
    if not step_x_e2e or any(s is None for s in e2e_steps):
        return {"per_seed": None, "mean": None, "at_least": None}
    per_seed = [(ls if ls is not None else max_steps) * step_x_e2e / es for ls, es in zip(lever_steps, e2e_steps)]
    escaped = all(s is not None for s in lever_steps)
    return {"per_seed": per_seed, "mean": statistics.fmean(per_seed) if escaped else None,
            "at_least": None if escaped else statistics.fmean(per_seed)}


def summarise_e2e(reference: list[dict], rows: list[dict], max_steps: int) -> dict:
    """The E2E reference beside the levers: its probe and escape steps, each lever's mean probe minus E2E's (pp,
    paired by seed, 95 % t-interval) and each lever's escape time in E2E's (`escape_time_x_e2e`), per seed."""
    from ..report.verdicts import paired

    by_seed = {r["seed"]: r for r in reference}
    out = {**_over_seeds(reference), "runs": reference, "levers": {}}
    for row in rows:
        seeds = [s for s in row["seeds"] if s in by_seed]
        lever_steps = [row["escape_steps"][row["seeds"].index(s)] for s in seeds]
        gap = paired([100 * (row["probe_per_seed"][row["seeds"].index(s)] - by_seed[s]["probe"]["mean"])
                      for s in seeds], MARGIN_PP)
        out["levers"][row["lever"]] = {
            "mean_minus_e2e_pp": {"mean": gap.mean, "low": gap.low, "high": gap.high, "values": gap.values},
            "escape_time_x_e2e": escape_time_x_e2e(lever_steps, [by_seed[s]["escape_step"] for s in seeds],
                                                   row.get("bench_time_x_e2e"), max_steps)}
    return out


def run_from_args(args) -> dict:
    levers = [n.strip() for n in args.levers.split(",")] if args.levers else None
    seeds = [int(s) for s in str(args.seeds).split(",")]
    return run_accuracy(args.preset, levers, args.sets, args.probe_data, seeds, args.runs, args.json_path,
                        args.bench_json, args.threads, base=args.base, jobs=args.jobs, random_floor=args.random_floor,
                        e2e=not args.no_e2e)
