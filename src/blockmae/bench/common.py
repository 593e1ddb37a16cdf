"""The light pieces shared by the harness and its workers (no torch import: `blockmae --help` stays fast)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

MARKER = "BLOCKMAE-BENCH-RESULT "  # the line a worker prints its result on
LOSS_TOLERANCE = 1e-4  # |HF - ours| on the first step, same weights, input and mask (tests/model: ~2e-5)


def first_losses_match(hf_loss: float, ours_loss: float, tolerance: float = LOSS_TOLERANCE) -> dict:
    """Compare the Hugging Face loss with ours on the same first step (same weights, input, mask)."""
    diff = abs(hf_loss - ours_loss)
    return {"hf": hf_loss, "ours": ours_loss, "abs_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance}


def command_line() -> str | None:
    """How this bench was started, for the results."""
    return " ".join(["blockmae", "bench"] + sys.argv[1:]) if sys.argv else None


def publish(results: dict, report: str, json_path: str | None, say) -> dict:
    """Print a bench's report and, with --json, write its results."""
    say("")
    say(report)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(results, indent=1))
        say(f"wrote {json_path}")
    return results
