"""`blockmae interfaces`: stitching at block boundaries and frozen-base continuation on a set of runs, written as
tidy rows (metrics.jsonl), a markdown report with the verdicts (interfaces.md) and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..analysis.figures.continuation import fig_continuation
from ..analysis.figures.stitching import fig_stitching
from ..analysis.rows_file import ROWS, write_rows
from ..report.gap_split import continuation_markdown
from ..report.stitching_finding import interfaces_markdown
from .continuation import continue_rows
from .stitching import STEPS, stitch_rows


def interface_rows(paths: list[str], spec: str, out: str | Path, *, stitch_steps: int = STEPS,
                   continue_steps: int = 0, boundaries: list[int] | None = None, batch_size: int = 32,
                   device: str = "auto", say: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Stitching rows (every ordered pair, at `boundaries` or every one; skipped with `stitch_steps` 0) and, with
    `continue_steps` > 0, frozen-base continuation rows (continued runs kept under out/continued/)."""
    if not stitch_steps and not continue_steps:
        raise ValueError("nothing to do: give stitching steps, continuation steps or both")
    rows = []
    if stitch_steps:
        rows += stitch_rows(paths, spec, steps=stitch_steps, boundaries=boundaries, batch_size=batch_size,
                            device=device, say=say)
    if continue_steps:
        rows += continue_rows(paths, spec, out, steps=continue_steps, batch_size=batch_size, device=device, say=say)
    return rows


def write_interfaces(rows: list[dict], out: str | Path, *, spec: str = "", stitch_steps: int | None = None
                     ) -> dict[str, Path]:
    """metrics.jsonl, interfaces.md (the stitching and continuation verdicts) and the figures the rows allow."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"metrics": out / ROWS, "report": out / "interfaces.md"}
    write_rows(written["metrics"], rows)
    parts = []
    if any(str(r.get("metric", "")).startswith("stitch_") for r in rows):
        parts.append(interfaces_markdown(rows, spec=spec, steps=stitch_steps))
    if any(str(r.get("metric", "")).startswith("continue") for r in rows):
        parts.append(continuation_markdown(rows))
    written["report"].write_text("\n".join(parts))
    for name, fn in (("stitching", fig_stitching), ("continuation", fig_continuation)):
        for path in fn(rows, out):
            written[name] = path
    return written


def interfaces(paths: list[str], spec: str, out: str | Path, *, stitch_steps: int = STEPS, continue_steps: int = 0,
               boundaries: list[int] | None = None, batch_size: int = 32, device: str = "auto",
               say: Callable[[str], None] = lambda _: None) -> dict[str, Path]:
    """The command: rows, then what `write_interfaces` writes."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a directory")
    rows = interface_rows(paths, spec, out, stitch_steps=stitch_steps, continue_steps=continue_steps,
                          boundaries=boundaries, batch_size=batch_size, device=device, say=say)
    return write_interfaces(rows, out, spec=spec, stitch_steps=stitch_steps or None)
