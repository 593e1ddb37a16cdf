"""How every bench ends: print the report and, with --json, write the results (with the command that made them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def command_line() -> str | None:
    """How this bench was started, for the results (`blockmae bench ...` and `benchmarks/bench.py ...` alike)."""
    if not sys.argv:
        return None
    args = sys.argv[1:]
    return " ".join(["blockmae", "bench"] + (args[1:] if args[:1] == ["bench"] else args))


def publish(results: dict, report: str, json_path: str | None, say) -> dict:
    """Print a bench's report and, with --json, write its results."""
    say("")
    say(report)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(results, indent=1))
        say(f"wrote {json_path}")
    return results
