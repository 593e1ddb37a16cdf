"""How the harness and a worker process talk: the spec goes in as one JSON argument, the result comes back as
one marked line on the worker's stdout (anything else it prints, e.g. warnings, is ignored)."""

from __future__ import annotations

import json

MARKER = "BLOCKMAE-BENCH-RESULT "  # the line a worker prints its result on


def result_line(result: dict) -> str:
    return MARKER + json.dumps(result)


def read_result(stdout: str) -> dict | None:
    """The worker's result from its stdout (the last marked line), or None when it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    return None
