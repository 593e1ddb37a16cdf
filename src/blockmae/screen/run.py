"""`blockmae screen`: does depth pay in a pretraining setting? A cheap test to run before a study.

A setting (a config and its overrides: data, mask, steps, rate...) is trained end-to-end twice per seed: the deep
encoder (its K stages, each with a monitor decoder on its detached output) and a shallow one (the first stage's
layers alone, its own decoder). Every snapshot of both is scored on the same held-out clips and masks beside the
trivial predictors (predict 0, each position's mean, the clip's visible mean, the per-clip oracle constant); the
final models are probed per block beside random-init encoders of the deep shape (linear, and attentive when asked),
and the probe rule (`screen.probes`) says whether the final block reads the latents and needs the depth to.

The loss rule (`report.depth_rule`; on the page: `screen.losses`) asks whether the top stage lies far enough below
the best trivial predictor and further than the shallow views (its own first stage; the shallow encoder trained
alone). The learning curves (margin against clips seen) say whether a setting that does not pay yet was still
improving when it stopped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..analysis.rows import mean_and_half_width
from ..config import ConfigError, config_path, load_config
from ..eval.reconstruction import BASELINES
from ..report.depth_rule import MIN_MARGIN, loss_rule
from ..report.probe_rule import probe_blocks, probe_markdown, probe_rule
from ..study import Study, train_all
from .losses import loss_markdown, pct

FLAT = 0.01  # a curve whose last step changed the margin by less than this share of the loss has flattened


def screen_runs(config: str, overrides: list[str], seeds: list[int], snapshots: int) -> dict[str, Study]:
    """The deep and the shallow end-to-end runs of a setting, as two studies with one run per seed (named by
    depth, e.g. depth12-s0 and depth3-s0), each keeping `snapshots` checkpoints for its learning curve."""
    cfg = load_config(config, overrides)
    if not cfg.train.max_steps:
        raise ConfigError("screen: the setting needs train.max_steps (its curves are read at snapshots of it)")
    every = max(1, cfg.train.max_steps // snapshots)
    common = list(overrides) + ["train.regime=e2e", f"train.snapshot_every={every}", f"train.checkpoint_every={every}"]
    partition, seeds = cfg.model.partition, list(seeds)
    return {"deep": Study(config, {"model.depth": [sum(partition)], "train.seed": seeds}, [], common,
                          random_floor=0),
            "shallow": Study(config, {"model.depth": [partition[0]], "train.seed": seeds}, [],
                             common + ["model.partition=1"], random_floor=0)}


def run_screen(config: str, overrides: list[str], out: str | Path, data: str | None = None, seeds=(0,),
               snapshots: int = 5, random_floor: int = 1, jobs: int = 2, eval_clips: int = 512,
               attentive: bool = False) -> dict:
    """Train the deep and shallow runs, score every snapshot's held-out loss, probe the final models on `data`
    (default: the setting's test data, `eval_clips` clips; `attentive`: the attentive probe too), and write
    screen.json, screen.md and screen.png in `out`. Re-running resumes (finished runs and scored snapshots are
    kept)."""
    from ..report.analyze import analyze
    from ..analysis.options import Options

    out, given = Path(out), config  # the pages name the config as given (`tiny`), not its resolved path
    config = config if Path(config).is_file() else str(config_path(config))
    studies = screen_runs(config, overrides, list(seeds), snapshots)
    cfg = load_config(config, overrides)
    spec = data or _with_n(cfg.data.test or cfg.data.train, eval_clips)
    runs = {kind: study.runs() for kind, study in studies.items()}
    train_all(studies["deep"], out, jobs, runs=runs["deep"] + runs["shallow"])  # one pool: both train at once
    kinds = {name: kind for kind, named in runs.items() for name, _ in named}
    curves = {name: held_out_curve(out / "runs" / name) for name in kinds}
    options = Options(layers=False, occlusion=False, samples=0, attentive=attentive)
    analyze([str(out / "runs" / name) for name in kinds], [spec], out / "analysis", options,
            with_random_floor=random_floor)
    rows = [json.loads(line) for line in (out / "analysis" / "metrics.jsonl").read_text().splitlines()]
    result = screen_result(curves, rows, kinds, len(cfg.model.partition), cfg.train.batch_size)
    result.update(config=str(given), overrides=list(overrides), data=spec, seeds=list(seeds))
    (out / "screen.json").write_text(json.dumps(result, indent=1))
    (out / "screen.md").write_text(screen_markdown(result))
    screen_figure(result, out / "screen.png")
    return result


def held_out_curve(run_dir: Path) -> list[dict]:
    """{step, losses, baselines} at every checkpoint the run kept: each stage's held-out loss (E2E: its monitors)
    and the trivial predictors', on the fixed clips and masks training's summary uses. Kept in the run directory
    (screen_curve.json), so a re-run scores only new snapshots."""
    import torch
    from tqdm import tqdm

    from ..checkpoint import checkpoint_steps, load_weights
    from ..model import BlockMAE
    from ..train.summary import held_out_losses

    cache = run_dir / "screen_curve.json"
    points = {p["step"]: p for p in (json.loads(cache.read_text()) if cache.is_file() else [])}
    cfg = load_config(run_dir / "config.yaml")
    model = BlockMAE(cfg.model)
    todo = [step for step in checkpoint_steps(run_dir) if step not in points]
    for step in tqdm(todo, desc=f"held-out loss, {run_dir.name}", unit="snapshot", disable=not todo):
        model.load_state_dict(load_weights(run_dir / "checkpoints" / str(step)))
        scored = held_out_losses(model, cfg, torch.device("cpu"))
        points[step] = {"step": step, "losses": scored["losses"], "baselines": scored["baselines"]}
    curve = [points[step] for step in sorted(points)]
    cache.write_text(json.dumps(curve, indent=1))
    return curve


def _with_n(spec: str, n: int) -> str:
    return spec if ",n=" in spec else f"{spec},n={n}"


def screen_result(curves: dict[str, list[dict]], rows: list[dict], kinds: dict[str, str], K: int, batch: int) -> dict:
    """Margins along the curves, the final margins, the verdict and the probe rise. `curves`: each trained run's
    `held_out_curve`; `rows`: the analysis of the final models (probes); `kinds`: run name -> "deep" or "shallow".
    A margin is (best trivial loss - loss) / best trivial loss, on the same clips and masks; the best trivial
    predictor is the lowest of the four at the end of training (they do not depend on the model)."""
    trivial = next(iter(curves.values()))[-1]["baselines"]
    best_key = min((k for k in BASELINES if trivial.get(k) is not None), key=lambda k: trivial[k])
    best = trivial[best_key]
    margins = {"deep": {str(b): [] for b in range(1, K + 1)}, "shallow": {"1": []}}
    for run, kind in kinds.items():
        for block in margins[kind]:
            margins[kind][block].append([(p["step"] * batch, (best - p["losses"][int(block) - 1]) / best)
                                         for p in curves[run]])
    final = {kind: {block: list(mean_and_half_width([c[-1][1] for c in runs if c])) for block, runs in d.items()}
             for kind, d in margins.items()}
    top = final["deep"][str(K)][0]
    views = {"first_stage": final["deep"]["1"][0], "shallow": final["shallow"]["1"][0]}
    # per seed (runs of a seed share their data order, so the rule pairs them)
    per_seed = {kind: {block: [c[-1][1] for c in runs if c] for block, runs in d.items()}
                for kind, d in margins.items()}
    tops = per_seed["deep"][str(K)]
    view_seeds = {"first_stage": per_seed["deep"]["1"], "shallow": per_seed["shallow"]["1"]}
    last_steps = [c[-1][1] - c[-2][1] for c in margins["deep"][str(K)] if len(c) > 1]
    return {"trivial": trivial, "best_trivial": best_key, "curves": margins, "final_margin": final,
            "ratios": {view: top / margin if margin > 0 else None for view, margin in views.items()},
            "seed_ratios": {view: [t / v if v > 0 else None for t, v in zip(tops, values)]
                            for view, values in view_seeds.items()},
            "loss_rule": loss_rule(tops, view_seeds),
            "top_last_change": sum(last_steps) / len(last_steps) if last_steps else None,
            "probes": probe_blocks(rows, kinds, K), "probe_rule": probe_rule(rows, kinds, K), "K": K, "batch": batch}


def screen_markdown(result: dict) -> str:
    """The screen's verdict, final margins, curves' last change and probe rise, as a short markdown page."""
    K = result["K"]
    trivial = ", ".join(f"{k} {v:.4f}" for k, v in result["trivial"].items() if v is not None)
    lines = [f"# Depth screen: {result['config']} {' '.join(result['overrides'])}", "",
             f"Evaluated on `{result['data']}`, seeds {result['seeds']}. Trivial predictors' held-out losses: "
             f"{trivial}; the best is **{result['best_trivial']}**.", "",
             "| encoder | margin below the best trivial predictor (% of its loss, final) "
             "| linear probe, mean over targets (%) |",
             "|---|---|---|"]
    probes = result["probes"]
    for block in range(1, K + 1):
        m, h = result["final_margin"]["deep"][str(block)]
        p = probes["deep"][block - 1] if probes["deep"] else [math.nan, math.nan]
        lines.append(f"| deep, stage {block} | {pct(m)} ± {pct(h)} | {pct(p[0])} ± {pct(p[1])} |")
    m, h = result["final_margin"]["shallow"]["1"]
    p = probes["shallow"][0] if probes["shallow"] else [math.nan, math.nan]
    lines.append(f"| shallow (stage 1's layers alone) | {pct(m)} ± {pct(h)} | {pct(p[0])} ± {pct(p[1])} |")
    if probes["random"]:
        lines.append(f"| random init, top block | - | {pct(probes['random'][-1][0])} ± {pct(probes['random'][-1][1])} |")
    lines += ["", *loss_markdown(result)]
    lines.append("")
    change = result["top_last_change"]
    if change is not None:
        state = "had flattened" if abs(change) < FLAT else "was still moving"
        lines.append(f"Over the last snapshot interval the top margin changed by {pct(change)} points: the curve "
                     f"{state} (flat: under {pct(FLAT)}).")
    lines += [""] + probe_markdown(result.get("probe_rule", {}), K)
    return "\n".join(lines).rstrip() + "\n"


def screen_figure(result: dict, path: Path) -> Path:
    """Margin below the best trivial predictor against clips seen: each deep stage and the shallow encoder."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, blocks in result["curves"].items():
        for block, runs in blocks.items():
            for i, points in enumerate(runs):
                if points:
                    x, y = zip(*points)
                    label = (f"deep stage {block}" if kind == "deep" else "shallow") if i == 0 else None
                    ax.plot(x, [100 * v for v in y], "-o" if kind == "deep" else "--s", ms=3, label=label,
                            color=plt.cm.viridis(int(block) / (result["K"] + 1)) if kind == "deep" else "black")
    ax.axhline(100 * MIN_MARGIN, color="grey", lw=0.8, ls=":")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("clips seen")
    ax.set_ylabel(f"% below {result['best_trivial']} (held-out)")
    ax.set_title("Does depth pay? margin below the best trivial predictor")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
