"""Tidy rows on disk: one JSON row a line, `metrics.jsonl`, or gzip-compressed `metrics.jsonl.gz` where a study
publishes them for git (so that a clone stays small). Every reader takes either."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

ROWS, PUBLISHED = "metrics.jsonl", "metrics.jsonl.gz"


def rows_path(where: str | Path) -> Path:
    """The rows file itself, or the one in a directory: its metrics.jsonl.gz, else its metrics.jsonl."""
    where = Path(where)
    if not where.is_dir():
        return where
    return where / PUBLISHED if (where / PUBLISHED).is_file() else where / ROWS


def read_rows(where: str | Path) -> list[dict]:
    """The rows of a .jsonl or .jsonl.gz file, or of the one in a directory (`rows_path`)."""
    path = rows_path(where)
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def write_rows(path: str | Path, rows: list[dict]) -> Path:
    """One JSON row a line; gzip-compressed where the name ends in .gz, with no timestamp or file name in the
    header, so the same rows give the same bytes (a re-published study changes no file it did not change)."""
    path = Path(path)
    data = "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path
