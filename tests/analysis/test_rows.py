"""The row queries and the seed aggregation the figures, the report, the findings and the demo share."""

from __future__ import annotations

import math

import pytest

from blockmae.analysis.rows import (ROW_KEYS, Group, final_block_values, final_rows, last_block, make_row,
                                    mean_and_half_width)
from test_figures import synthetic_rows


def test_mean_and_half_width():
    mean, half = mean_and_half_width([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.303 * 1.0 / math.sqrt(3), abs=1e-3)  # t_{0.975, 2} * s / sqrt(n)
    mean, half = mean_and_half_width([0.5])
    assert mean == 0.5 and math.isnan(half)
    mean, half = mean_and_half_width([float("nan"), 1.0])  # the nan is left out: one value, no interval
    assert mean == 1.0 and math.isnan(half)


def test_aggregation_over_seeds():
    rows = synthetic_rows()
    values = final_block_values(final_rows(rows), "probe_acc", "gratings")
    g = Group("vit-tiny", "e2e", 4)
    assert len(values[g]) == 2  # two seeds, the step rows are not mixed in
    expected = [r["value"] for r in rows if r["regime"] == "e2e" and r["dataset"] == "gratings" and r["block"] == 4
                and r["metric"] == "probe_acc" and r["target"] == "mean" and r["step"] is None]
    assert sorted(values[g]) == sorted(expected)
    assert len(values[Group("vit-tiny", "random", 4)]) == 1


def test_rows_are_built_in_schema_order():
    run = {"run": "a", "regime": "e2e", "model": "vit-tiny", "K": 2, "seed": 0}
    row = make_row(run, "digits", "test", "cka_linear", 0.5, block=1, block2=2)
    assert tuple(row)[:len(ROW_KEYS)] == ROW_KEYS and row["block2"] == 2 and row["target"] == "mean"
    rows = [row, make_row(run, "digits", "test", "probe_acc", 0.7, block=2),
            make_row({**run, "run": "b"}, "digits", "test", "probe_acc", 0.6, layer=3)]
    assert last_block(rows) == {"a": 2}
