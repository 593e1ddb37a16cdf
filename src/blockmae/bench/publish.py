"""How every bench ends: print the report and, with --json, write the results (with the command that made them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


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
