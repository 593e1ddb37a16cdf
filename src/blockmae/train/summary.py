"""summary.json of a finished run: its first and last logged losses, skipped samples, and every stage's
held-out loss beside the trivial predictors'."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..config import Config
from ..data import SkipCorrupt, build_dataset
from ..data.batches import model_batches
from ..eval.reconstruction import held_out_losses as score_held_out
from ..model import BlockMAE
from .logging import read_log

EVAL_SEED = 0


def write_summary(out: Path, cfg: Config, model: BlockMAE, steps: int, skipped_files: list, device: torch.device,
                  **extra) -> dict:
    """summary.json of a finished run: losses from its log, skipped samples, held-out loss per stage (+ `extra`)."""
    rows = read_log(out)
    summary = {"regime": cfg.train.regime, "partition": model.partition, "seed": cfg.train.seed, "steps": steps,
               **first_and_last_losses(rows, model.num_stages),
               "skipped": sum(row.get("skipped", 0) for row in rows), "skipped_files": skipped_files,
               "held_out": held_out_losses(model, cfg, device), **extra}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def first_and_last_losses(rows: list[dict], num_stages: int) -> dict:
    """Each stage's first and last logged training loss (a stage may only log during its phase)."""
    first, last = [None] * num_stages, [None] * num_stages
    for row in rows:
        for k, v in enumerate(row["losses"]):
            if v is not None:
                first[k] = v if first[k] is None else first[k]
                last[k] = v
    return {"first_losses": first, "last_losses": last}


def held_out_losses(model: BlockMAE, cfg: Config, device: torch.device, max_clips: int = 256) -> dict:
    """Every stage's loss on held-out clips under fixed masks (E2E: its monitor decoders), beside the
    trivial predictors' losses (`baselines`) on the same clips and masks."""
    m = cfg.model
    spec = cfg.data.test or cfg.data.train
    # One data seed for every run (the analysis's too): runs of different seeds are scored on the same clips and
    # masks, so their spread is training's, not the evaluation set's. The test split never overlaps training's.
    dataset = SkipCorrupt(build_dataset(spec, "test", frames=m.frames, image_size=m.image_size, channels=m.channels,
                                        seed=EVAL_SEED), strict=cfg.data.strict, replace=False)
    n = min(len(dataset), max_clips)
    batch = min(cfg.train.batch_size, n)

    def videos():
        return model_batches(dataset, range(n), batch, device, m.pixel_mean, m.pixel_std)

    return {"data": spec, "split": "test", **score_held_out(model, videos, cfg.mask.kind, cfg.mask.ratio)}
