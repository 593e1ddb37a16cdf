"""`blockmae analyze`: measure (`analysis.analyze.measure`: metrics.jsonl, figures/), then report.html over it."""

from __future__ import annotations

from pathlib import Path

from ..analysis.analyze import measure
from ..analysis.options import Options
from ..analysis.suite import PROTOCOL
from .page import write_report


def analyze(paths: list[str], data: list[str], out: str | Path, options: Options | None = None,
            with_random_floor: bool | int = False, extra_rows: list[dict] | None = None) -> Path:
    """Analyse every source on every data spec; returns the report's path. `with_random_floor`: also that many
    random encoders of the first source's shape (True: `sources.DEFAULT_RANDOM_FLOORS`). `extra_rows` (e.g.
    `blockmae interfaces` rows on the same runs) join the analysis's rows in metrics.jsonl, the figures and the
    report."""
    measured = measure(paths, data, out, options, with_random_floor, extra_rows)
    return write_report(Path(out), measured.rows, measured.figures, measured.runs, PROTOCOL, timings=measured.timings)
