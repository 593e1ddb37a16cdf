"""What training logs: the log rows (`LossWindow`) in RUN_DIR/log.jsonl and optional TensorBoard events, the
corrupt samples it names (`SkipReport`), and the table of finished runs' losses (`loss_table`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..eval.reconstruction import best_reference, margin_below


class LossWindow:
    """The numbers between two log rows: each stage's mean loss over the steps it computed one, the clip
    rate, and the samples skipped; `row` returns the log.jsonl row and starts the next window."""

    def __init__(self, num_stages: int):
        self.num_stages = num_stages
        self.reset()

    def reset(self) -> None:
        self.sums, self.counts = [0.0] * self.num_stages, [0] * self.num_stages
        self.clips, self.skipped, self.tick = 0, 0, time.perf_counter()

    def add(self, losses: list[float | None]) -> None:
        """One step's per-stage losses (None: the stage computed none)."""
        for k, value in enumerate(losses):
            if value is not None:
                self.sums[k] += value
                self.counts[k] += 1

    def count_batch(self, clips: int, skipped: int) -> None:
        self.clips += clips
        self.skipped += skipped

    def row(self, step: int, steps_per_epoch: int, phase: int, lr: float) -> dict:
        elapsed = time.perf_counter() - self.tick
        row = {"step": step, "epoch": step // steps_per_epoch, "phase": phase + 1,
               "losses": [s / c if c else None for s, c in zip(self.sums, self.counts)], "lr": lr,
               "clips_per_s": self.clips / max(elapsed, 1e-9), "skipped": self.skipped}
        self.reset()
        return row


class SkipReport:
    """Corrupt samples that were replaced: each named once, the first 20 kept for summary.json."""

    def __init__(self):
        self.files, self.named = [], set()

    def add(self, skipped: list) -> None:
        for item in skipped:
            if item not in self.named:
                self.named.add(item)
                tqdm.write(f"skipped {item} (named once; later skips are only counted)")
            if len(self.files) < 20 and item not in self.files:
                self.files.append(item)


class RunLog:
    def __init__(self, run_dir: Path, resume_step: int, tensorboard: bool):
        self.path = Path(run_dir) / "log.jsonl"
        self._truncate_after(resume_step)
        self.file = open(self.path, "a")
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RuntimeError("train.tensorboard=true needs the tensorboard package: pip install tensorboard") from None
            self.tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step + 1)

    def _truncate_after(self, step: int) -> None:
        """A resumed run continues from its checkpoint: drop lines a crashed run logged past it."""
        if not self.path.exists():
            return
        keep = [line for line in self.path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in keep))

    def write(self, row: dict) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in enumerate(row.get("losses", [])):
                if v is not None:
                    self.tb.add_scalar(f"loss/stage_{k + 1}", v, row["step"])
            for key in ("lr", "clips_per_s"):
                self.tb.add_scalar(key, row[key], row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def read_log(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


# summary.json's baseline key -> its column in `loss_table`
TRIVIAL_COLUMNS = {"zero": "zero", "position_mean": "lookup", "visible_mean": "copy", "oracle_constant": "oracle"}


def loss_table(summaries: dict[str, dict]) -> str:
    """Per-stage first -> last logged training loss and held-out loss, one row per run and stage, with how far the
    held-out loss lies below the better of the lookup table and the copy (in % of it), the four trivial predictors'
    held-out losses on the same clips and masks, and a warning for every run whose top stage beats neither."""
    def fmt(v, width=8):
        return f"{v:{width}.4f}" if v is not None else f"{'-':>{width}}"

    lines = [f"{'run':<22} {'stage':>5} {'first':>8} {'last':>8} {'held-out':>9} {'below%':>7}   "
             + " ".join(f"{name:>7}" for name in TRIVIAL_COLUMNS.values())]
    for name, s in summaries.items():
        base = s["held_out"].get("baselines", {})
        best = best_reference(base)
        for k, (a, b, h) in enumerate(zip(s["first_losses"], s["last_losses"], s["held_out"]["losses"]), start=1):
            below = f"{margin_below(h, best[1]):+7.1f}" if best else f"{'-':>7}"
            trivial = " ".join(fmt(base.get(key), 7) for key in TRIVIAL_COLUMNS) if k == 1 else ""
            lines.append(f"{name:<22} {k:>5} {fmt(a)} {fmt(b)} {h:9.4f} {below}   {trivial}".rstrip())
    lines += ["below%: the held-out loss below the better of lookup (each position's mean target) and copy (the",
              "clip's visible mean), in % of it; oracle: the best constant per clip (it peeks at the hidden targets)"]
    lines += [f"warning: {w}" for w in learning_warnings(summaries)]
    return "\n".join(lines)


def learning_warnings(summaries: dict[str, dict]) -> list[str]:
    """A line per run whose top-stage held-out loss is not below the lookup table (each position's mean target)
    or the copy (the clip's visible mean), whichever is lower."""
    out = []
    for name, s in summaries.items():
        best = best_reference(s["held_out"].get("baselines", {}))
        top = s["held_out"]["losses"][-1]
        if best is not None and not top < best[1]:
            what = ("position-mean predictor's", "a lookup table") if best[0] == "position_mean" else \
                ("visible-mean predictor's", "a copy of the clip's visible mean")
            out.append(f"{name}: held-out loss {top:.4f} is not below the {what[0]} {best[1]:.4f}; the model has "
                       f"learned nothing {what[1]} could not (train longer, or see docs/preset_sweep.md)")
    return out
