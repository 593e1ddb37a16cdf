"""`blockmae demo`: the tiny preset pretrained on moving digits in three regimes, analysed side by side."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .analysis.analyze import analyze
from .analysis.suite import Options
from .config import config_path, load_config
from .train.engine import pretrain
from .train.logging import loss_table

# (run name, overrides): E2E and the two blockwise regimes with K=4, as in the paper.
DEMO_RUNS = [
    ("e2e", ["train.regime=e2e", "model.partition=4"]),
    ("simultaneous-K4", ["train.regime=simultaneous", "model.partition=4"]),
    ("sequential-K4", ["train.regime=sequential", "model.partition=4"]),
]
DEMO_DATA = ["digits,n=512", "gratings,n=600", "gratings2,n=600"]
QUICK = ["train.max_steps=12", "train.batch_size=8", "data.train=digits,n=96", "train.log_every=4",
         "train.checkpoint_every=12"]
QUICK_DATA = ["digits,n=48", "gratings,n=60", "gratings2,n=60"]


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
    out.mkdir(parents=True, exist_ok=True)
    summaries, started = {}, time.perf_counter()
    for name, overrides in DEMO_RUNS:
        cfg = load_config(config_path("tiny"), overrides + (QUICK if quick else []))
        summaries[name] = pretrain(cfg, out / name)
    (out / "summary.json").write_text(json.dumps(summaries, indent=1))
    trained = time.perf_counter() - started

    report = analyze([str(out / name) for name, _ in DEMO_RUNS], QUICK_DATA if quick else DEMO_DATA,
                     out / "analysis", Options(batch_size=64, layers=False), with_random_floor=True)
    rows = [json.loads(line) for line in (out / "analysis" / "metrics.jsonl").read_text().splitlines()]
    print(f"\nper-stage reconstruction loss (training: first -> last logged; held-out: "
          f"{next(iter(summaries.values()))['held_out']['clips']} test clips, fixed masks)")
    print(loss_table(summaries))
    print()
    print(final_block_table(rows))
    total = time.perf_counter() - started
    print(f"\ndemo finished in {total:.0f} s (pretraining {trained:.0f} s, analysis {total - trained:.0f} s)")
    print(f"report: {report}")
    return report
