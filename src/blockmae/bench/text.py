"""Pieces of the plain-text tables the reports print."""

from __future__ import annotations

MiB = 2 ** 20


def cell(value, spec: str, none: str = "-") -> str:
    """`value` formatted by `spec` (e.g. '7.2f'), or `none` right-aligned to the same width when missing."""
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 0
    return f"{none:>{width}}" if value is None else format(value, spec)
