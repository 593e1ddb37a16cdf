"""The row queries and the seed aggregation the figures, the report, the findings and the demo share."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blockmae.analysis.rows import (ROW_KEYS, Group, final_block_values, final_rows, last_block, make_row,
                                    mean_and_half_width)
from helpers import CHANCE, TRIVIAL_LOSSES, synthetic_rows


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
    assert len(values[Group("vit-tiny", "random", 4)]) == 3  # the floor: three random encoders


def test_rows_are_built_in_schema_order():
    run = {"run": "a", "regime": "e2e", "model": "vit-tiny", "K": 2, "seed": 0}
    row = make_row(run, "digits", "test", "cka_linear", 0.5, block=1, block2=2)
    assert tuple(row)[:len(ROW_KEYS)] == ROW_KEYS and row["block2"] == 2 and row["target"] == "mean"
    rows = [row, make_row(run, "digits", "test", "probe_acc", 0.7, block=2),
            make_row({**run, "run": "b"}, "digits", "test", "probe_acc", 0.6, layer=3)]
    assert last_block(rows) == {"a": 2}


def test_relative_depth_puts_the_last_block_of_every_K_at_one():
    from blockmae.analysis.rows import with_depth

    rows = [make_row({"run": f"r{K}", "regime": "e2e", "model": "m", "K": K, "seed": 0}, "d", None, "probe_acc", 0.5,
                     block=k) for K in (4, 6) for k in range(1, K + 1)]
    depth = {(r["K"], r["block"]): r["depth"] for r in with_depth(rows)}
    assert depth[(4, 4)] == depth[(6, 6)] == 1.0 and depth[(4, 2)] == depth[(6, 3)] == 0.5
    assert depth[(6, 1)] == pytest.approx(1 / 6)
    pairs = [{**r, "block2": r["block"] + 1} for r in rows if r["block"] < r["K"]]
    assert max(r["depth"] for r in with_depth(pairs, pairs=True) if r["K"] == 6) == 1.0  # pair 5->6 ends the encoder
    unknown = [{**r, "K": None} for r in rows if r["K"] == 6]  # a checkpoint of unknown K: its highest block
    assert [r["depth"] for r in with_depth(unknown)][2] == 0.5


def test_difference_interval_is_welchs():
    from scipy import stats

    from blockmae.analysis.rows import difference_and_half_width

    a, b = [0.61, 0.64, 0.60, 0.66], [0.30, 0.36, 0.31]
    diff, half = difference_and_half_width(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (diff - half, diff + half) == pytest.approx((welch.low, welch.high))
    _, wider = difference_and_half_width(a, [0.1, 0.3, 0.5])  # a floor that varies widens the interval
    assert wider > half
    one_floor = difference_and_half_width(a, [0.3])  # a single floor run adds no spread: a's own t-interval
    assert one_floor[1] == pytest.approx(mean_and_half_width(a)[1])
    assert math.isnan(difference_and_half_width([0.5], [0.3])[1])


def test_chance_and_trivial_losses_are_read_from_their_rows():
    from blockmae.analysis.rows import chance_of, reference_loss, trivial_losses_of

    rows = synthetic_rows(datasets=("digits", "gratings"), steps=())
    assert chance_of(rows, "digits", "digit") == pytest.approx(CHANCE["digits"])
    assert chance_of(rows, "gratings", "mean") == pytest.approx(CHANCE["gratings"] + 0.02 * 2)  # five targets
    assert chance_of(rows, "nowhere") is None
    assert trivial_losses_of(rows, "gratings") == pytest.approx(TRIVIAL_LOSSES)
    assert reference_loss(rows, "gratings") == TRIVIAL_LOSSES["visible_mean"]  # the copy beats the lookup table
    lookup_only = [r for r in rows if r["metric"] != "recon_loss_visible_mean"]
    assert reference_loss(lookup_only, "gratings") == TRIVIAL_LOSSES["position_mean"]


def test_rows_files_plain_or_compressed_read_the_same(tmp_path):
    from blockmae.analysis.rows_file import read_rows, write_rows

    rows = synthetic_rows(datasets=("digits",), steps=())
    (tmp_path / "a").mkdir()
    plain, packed = write_rows(tmp_path / "a" / "metrics.jsonl", rows), write_rows(tmp_path / "b.jsonl.gz", rows)
    assert read_rows(plain) == read_rows(packed) == read_rows(tmp_path / "a") == rows
    assert packed.stat().st_size < plain.stat().st_size / 5
    assert write_rows(tmp_path / "c.jsonl.gz", rows).read_bytes() == packed.read_bytes()  # no timestamp inside
    (tmp_path / "a" / "metrics.jsonl.gz").write_bytes(packed.read_bytes())
    assert read_rows(tmp_path / "a") == rows  # a directory: its compressed rows first
