"""`blockmae demo`: the tiny preset pretrained on moving digits in three regimes, analysed side by side.

The demo is a small built-in study (see `study.py`): E2E, simultaneous and sequential with K=4,
trained two at a time, then analysed on digits, gratings and gratings2 against a random floor.
"""

from __future__ import annotations

import time
from pathlib import Path

from .study import Study, run_study
from .train.logging import loss_table

# 600 steps: at 400 the trained encoders are still below the random floor on digits motion
# (direction 0.83 vs 0.89); at 600 simultaneous K=4 reaches 0.96 (docs/performance.md, lever table).
DEMO = Study(config="tiny", grid={"train.regime": ["e2e", "simultaneous", "sequential"], "model.partition": [4]},
             data=["digits,n=512", "gratings,n=600", "gratings2,n=600"], overrides=["train.max_steps=600"],
             layers=False, jobs=2)
# --quick: a one-minute smoke run of the same pipeline.
QUICK = Study(config="tiny", grid=DEMO.grid, data=["digits,n=48", "gratings,n=60", "gratings2,n=60"],
              overrides=["train.max_steps=12", "train.batch_size=8", "data.train=digits,n=96", "train.log_every=4",
                         "train.checkpoint_every=12"], layers=False, jobs=2)


def final_block_table(rows: list[dict]) -> str:
    """Final-block probe accuracy per target and retrieval mAP, one line per run and dataset."""
    last = {}
    for r in rows:
        if r["block"] and r["step"] is None and "block2" not in r:
            last[r["run"]] = max(last.get(r["run"], 0), r["block"])
    pick = {(r["run"], r["dataset"], r["metric"], r["target"]): r["value"] for r in rows
            if r["step"] is None and "block2" not in r and r["block"] == last.get(r["run"])}
    lines = [f"{'run':<22} {'dataset':<10} {'mAP':>6}  probe accuracy per target (final block)"]
    for run in last:
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            accs = {t: v for (ru, d, m, t), v in pick.items() if ru == run and d == dataset and m == "probe_acc"}
            if accs:
                mean_map = pick.get((run, dataset, "retrieval_map", "mean"), float("nan"))
                text = "  ".join(f"{t}={v:.2f}" for t, v in accs.items())
                lines.append(f"{run:<22} {dataset:<10} {mean_map:6.3f}  {text}")
    return "\n".join(lines)


def run_demo(out: Path, quick: bool = False) -> Path:
    started = time.perf_counter()
    report, summaries, rows, _ = run_study(QUICK if quick else DEMO, out)
    print(f"\nper-stage reconstruction loss (training: first -> last logged; held-out: "
          f"{next(iter(summaries.values()))['held_out']['clips']} test clips, fixed masks)")
    print(loss_table(summaries))
    print()
    print(final_block_table(rows))
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    print(f"report: {report}")
    return report
