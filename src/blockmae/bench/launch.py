"""Starting bench processes: one configuration's worker (`python -m blockmae.bench.worker`), in a fresh process
so its peak memory is its own, and the environment every child process needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .protocol import read_result


def child_environment(**extra: str) -> dict:
    """This process's environment with the source tree first on PYTHONPATH (so a source checkout works without
    installing) and `extra` variables set."""
    src = str(Path(__file__).resolve().parents[2])
    return {**os.environ, **extra,
            "PYTHONPATH": os.pathsep.join(p for p in [src, os.environ.get("PYTHONPATH", "")] if p)}


def run_worker(spec: dict, in_process: bool = False, timeout: float | None = None) -> dict:
    """Measure `spec` in a fresh Python process (or in this one, for tests: memory then is not isolated)."""
    if in_process:
        from .worker import measure  # here: the worker imports torch, which the parser-building CLI must not
        try:
            return measure(spec)
        except Exception as e:  # noqa: BLE001 - a failing configuration is reported, not fatal
            return {"name": spec["name"], "error": f"{type(e).__name__}: {e}"}
    try:
        proc = subprocess.run([sys.executable, "-m", "blockmae.bench.worker", json.dumps(spec)],
                              env=child_environment(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"name": spec["name"], "error": f"timed out after {timeout} s"}
    result = read_result(proc.stdout)
    if result is not None:
        return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"name": spec["name"], "error": f"worker exited with {proc.returncode}: " + " | ".join(tail)}
