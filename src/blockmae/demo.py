"""`blockmae demo`: the tiny preset pretrained on the built-in scenes in three regimes, analysed side by side.

The demo is a small built-in study (see `study.py`): E2E, simultaneous and sequential with K=4,
trained side by side, then analysed on scenes (held-out split), gratings2 and digits against three
randomly initialised encoders (the floor, with an interval over their seeds) and chance, with every held-out loss
beside the trivial predictors.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from .report.learning import learning_verdicts
from .analysis.rows import datasets_of, is_pair, last_block, ordered
from .regimes import DEFAULT, REFERENCE, SEQUENTIAL
from .study import Study, run_study
from .train.logging import loss_table

# 400 steps, the three runs at once (one thread each; sequential is the cheapest and finishes first): the
# ten-minute budget on two cores. The held-out loss is below the position-mean lookup table from ~300 steps
# (docs/preset_sweep.md); the study (make study) trains 600.
DEMO = Study(config="tiny", grid={"train.regime": [REFERENCE, DEFAULT, SEQUENTIAL], "model.partition": [4]},
             data=["scenes,n=320", "gratings2,n=384", "digits,n=256"], overrides=["train.max_steps=400"],
             layers=False, jobs=3)
# --quick: a smoke run of the same pipeline, the three random encoders included (measured on a shared 2-core
# machine: 389 s, against 313 s with one; the analysis is 353 s of it, against 217 s).
QUICK = Study(config="tiny", grid=DEMO.grid, data=["scenes,n=48", "gratings2,n=60", "digits,n=48"],
              overrides=["train.max_steps=12", "train.batch_size=8", "data.train=scenes,n=96", "train.log_every=4",
                         "train.checkpoint_every=12"], layers=False, jobs=3)


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
    for line in learning_verdicts(rows):
        print(f"note: {line}")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    print(f"report: {report}")
    return report
