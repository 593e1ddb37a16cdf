"""`blockmae demo`: the tiny preset pretrained end to end on the built-in grammar, analysed against random encoders.

The demo is a small built-in study (see `study.py`): one E2E run of the tiny preset (K=4, the `hierarchy` grammar,
where depth pays: docs/depth_screen.md) on both cores, its stage monitors fitted after training, then analysed on
held-out grammar clips against three randomly initialised encoders (the floor, with an interval over their seeds)
and chance, with every stage's held-out loss beside the trivial predictors. What it shows: the encoder's loss
margin below the best trivial predictor grows stage by stage, and its probes of the grammar's latents rise with
depth above the random encoders'. The blockwise regimes need the full budget each: `make study`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from .analysis.rows import datasets_of, final_rows, is_pair, last_block, ordered, select, trivial_losses_of
from .regimes import REFERENCE
from .report.depth_rule import MIN_MARGIN, RATIO, loss_rule
from .report.learning import BASELINES, learning_verdicts
from .study import Study, run_study
from .train.logging import loss_table

GRAMMAR = "hierarchy,symbols=8,rules=4"
# One plain E2E run on both cores (no monitors while training: they would cost most of its step; 150 steps fit
# them on the frozen encoder after) for the preset's 3000 steps, where the top stage has escaped the position-mean
# plateau (docs/depth_screen.md, "What it would take"). Measured on 2 cores: training and fit 540 s (~160 clips/s),
# the analysis 40 s, 9 min 48 s in all.
DEMO = Study(config="tiny", grid={"train.regime": [REFERENCE], "model.partition": [4]},
             data=[f"{GRAMMAR},n=512"], overrides=["train.monitor_every=0", "train.monitor_fit_steps=150"],
             layers=False, occlusion=False, jobs=1)
# --quick: a smoke run of the same pipeline on a few clips and steps, the three random encoders included.
QUICK = Study(config="tiny", grid=DEMO.grid, data=[f"{GRAMMAR},n=48"],
              overrides=[*DEMO.overrides, "train.max_steps=12", "train.batch_size=8", f"data.train={GRAMMAR},n=96",
                         "train.log_every=4", "train.checkpoint_every=12", "train.monitor_fit_steps=4"],
              layers=False, occlusion=False, jobs=1)


def depth_lines(rows: list[dict]) -> list[str]:
    """Per dataset and trained run: each stage's held-out loss margin below the best trivial predictor (% of its
    loss), and the probe's mean over targets at every block beside the random encoders' (their mean over seeds).
    Depth paying reads as margins and probes that rise stage by stage above the floor."""
    rows, lines = final_rows(rows), []
    for dataset in datasets_of(rows):
        trivial = trivial_losses_of(rows, dataset)
        if trivial:
            key, best = min(trivial.items(), key=lambda kv: kv[1])
            losses = defaultdict(dict)
            for r in select(rows, "recon_loss", dataset=dataset):
                if r["regime"] != "random":
                    losses[r["run"]][r["block"]] = r["value"]
            for run, by_stage in losses.items():
                margins = [100 * (best - by_stage[b]) / best for b in sorted(by_stage)]
                pays = loss_rule([margins[-1] / 100], {"first": [margins[0] / 100]})["by_means"]["first"]
                lines.append(f"{dataset}: {run}: held-out loss per stage on the analysis clips, % below the best "
                             f"trivial predictor ({BASELINES[key]}, {best:.4f}): "
                             f"{' / '.join(f'{m:.1f}' for m in margins)}; depth "
                             f"{'pays' if pays else 'does not pay'} by the rule's bars (top >= "
                             f"{100 * MIN_MARGIN:.0f} % and >= {RATIO}x the first stage; one run, no interval)")
        probes = defaultdict(lambda: defaultdict(list))  # line -> block -> one value per run
        for r in select(rows, "probe_acc", dataset=dataset):
            probes["random init" if r["regime"] == "random" else r["run"]][r["block"]].append(r["value"])
        for line in sorted(probes, key=lambda name: name == "random init"):
            seeds = len(next(iter(probes[line].values())))
            label = f"random init ({seeds} seeds, mean)" if line == "random init" else line
            accs = " / ".join(f"{100 * np.mean(v):.1f}" for _, v in sorted(probes[line].items()))
            lines.append(f"{dataset}: {label}: probe accuracy per block, mean over targets (%): {accs}")
    return lines


def final_block_table(rows: list[dict]) -> str:
    """Final-block probe accuracy per target and retrieval mAP, one line per run and dataset; the random-init
    encoders as one line (the mean over their seeds), and each dataset's chance (majority class) per target."""
    blocks = [r for r in rows if r["block"] is not None and r["step"] is None and not is_pair(r)]
    last = last_block(blocks)
    floor_runs = {r["run"] for r in blocks if r["regime"] == "random"}
    floor = f"random init ({len(floor_runs)} seed{'s' if len(floor_runs) != 1 else ''})"
    line_of = {run: floor if run in floor_runs else run for run in last}
    picked = defaultdict(list)  # (line, dataset, metric, target) -> one value per run
    for r in blocks:
        if r["block"] == last[r["run"]]:
            picked[(line_of[r["run"]], r["dataset"], r["metric"], r["target"])].append(r["value"])
    chance = {(r["dataset"], r["target"]): r["value"] for r in rows if r["metric"] == "chance_acc"}
    lines = [f"{'run':<22} {'dataset':<10} {'mAP':>6}  probe accuracy per target (final block)"]
    for dataset in datasets_of(rows):
        for line in ordered(line_of.values()):
            accs = {t: np.mean(v) for (ln, d, m, t), v in picked.items() if ln == line and d == dataset
                    and m == "probe_acc"}
            if accs:
                mean_map = np.mean(picked.get((line, dataset, "retrieval_map", "mean"), [float("nan")]))
                text = "  ".join(f"{t}={v:.2f}" for t, v in accs.items())
                lines.append(f"{line:<22} {dataset:<10} {mean_map:6.3f}  {text}")
        here = {t: v for (d, t), v in chance.items() if d == dataset}
        if here:
            lines.append(f"{'chance (majority)':<22} {dataset:<10} {'':>6}  "
                         + "  ".join(f"{t}={v:.2f}" for t, v in here.items()))
    return "\n".join(lines)


def run_demo(out: Path, quick: bool = False) -> Path:
    started = time.perf_counter()
    report, summaries, rows, _ = run_study(QUICK if quick else DEMO, out)
    print(f"\nper-stage reconstruction loss (training: first -> last logged; held-out: "
          f"{next(iter(summaries.values()))['held_out']['clips']} test clips, fixed masks)")
    print(loss_table(summaries))
    print()
    print(final_block_table(rows))
    print()
    for line in depth_lines(rows):
        print(line)
    for line in learning_verdicts(rows):
        print(f"note: {line}")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    print(f"report: {report}")
    return report
