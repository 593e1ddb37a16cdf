"""`blockmae demo`: the tiny preset pretrained on moving digits in three regimes, side by side."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .config import config_path, load_config
from .train.engine import pretrain
from .train.logging import loss_table

# (run name, overrides): E2E and the two blockwise regimes with K=4, as in the paper.
DEMO_RUNS = [
    ("e2e", ["train.regime=e2e", "model.partition=4"]),
    ("simultaneous-K4", ["train.regime=simultaneous", "model.partition=4"]),
    ("sequential-K4", ["train.regime=sequential", "model.partition=4"]),
]
QUICK = ["train.max_steps=12", "train.batch_size=8", "data.train=digits,n=96", "train.log_every=4",
         "train.checkpoint_every=12"]


def run_demo(out: Path, quick: bool = False) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    summaries, started = {}, time.perf_counter()
    for name, overrides in DEMO_RUNS:
        cfg = load_config(config_path("tiny"), overrides + (QUICK if quick else []))
        summaries[name] = pretrain(cfg, out / name)
    (out / "summary.json").write_text(json.dumps(summaries, indent=1))
    print(f"\nper-stage reconstruction loss (training: first -> last logged; held-out: "
          f"{next(iter(summaries.values()))['held_out']['clips']} test clips, fixed masks)")
    print(loss_table(summaries))
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; runs in {out}/<regime>, summary in {out}/summary.json")
    return summaries
