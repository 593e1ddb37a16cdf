"""RUN_DIR/log.jsonl (one JSON object per logged step) and optional TensorBoard events."""

from __future__ import annotations

import json
from pathlib import Path


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


def loss_table(summaries: dict[str, dict]) -> str:
    """Per-stage first -> last logged training loss and held-out loss, one row per run and stage, with the
    trivial predictors' held-out losses on the same clips and masks (predict 0, each position's mean, the
    clip's visible mean) and a warning for every run whose top stage does not beat the position mean."""
    def fmt(v, width=8):
        return f"{v:{width}.4f}" if v is not None else f"{'-':>{width}}"
    lines = [f"{'run':<22} {'stage':>5} {'first':>8} {'last':>8} {'held-out':>9}   "
             f"{'zero':>7} {'pos-mean':>8} {'vis-mean':>8}"]
    for name, s in summaries.items():
        base = s["held_out"].get("baselines", {})
        for k, (a, b, h) in enumerate(zip(s["first_losses"], s["last_losses"], s["held_out"]["losses"]), start=1):
            trivial = " ".join(fmt(base.get(key), w) for key, w in
                               (("zero", 7), ("position_mean", 8), ("visible_mean", 8))) if k == 1 else ""
            lines.append(f"{name:<22} {k:>5} {fmt(a)} {fmt(b)} {h:9.4f}   {trivial}".rstrip())
    lines += [f"warning: {w}" for w in learning_warnings(summaries)]
    return "\n".join(lines)


def learning_warnings(summaries: dict[str, dict]) -> list[str]:
    """A line per run whose top-stage held-out loss is not below predicting each position's mean target."""
    out = []
    for name, s in summaries.items():
        lookup = s["held_out"].get("baselines", {}).get("position_mean")
        top = s["held_out"]["losses"][-1]
        if lookup is not None and not top < lookup:
            out.append(f"{name}: held-out loss {top:.4f} is not below the position-mean predictor's {lookup:.4f}; "
                       "the model has learned nothing a lookup table could not (train longer, or see docs/preset_sweep.md)")
    return out
