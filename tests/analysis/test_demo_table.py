"""The demo's printed final-block table: the random-init encoders as one line, chance beside every probe set."""

import numpy as np

from blockmae.demo import final_block_table
from helpers import CHANCE, synthetic_rows


def test_final_block_table_has_one_floor_line_and_chance():
    rows = synthetic_rows(datasets=("digits", "gratings"), steps=())
    lines = final_block_table(rows).splitlines()
    floor = [line for line in lines if line.startswith("random init (3 seeds)")]
    assert len(floor) == 2  # one per dataset, not one per random encoder
    seeds = [r["value"] for r in rows if r["regime"] == "random" and r["dataset"] == "digits" and r["block"] == 4
             and r["metric"] == "probe_acc" and r["target"] == "digit" and r["step"] is None]
    assert f"digit={np.mean(seeds):.2f}" in floor[0]
    chance = [line for line in lines if line.startswith("chance (majority)")]
    assert len(chance) == 2 and f"digit={CHANCE['digits']:.2f}" in chance[0]
    assert lines.index(chance[0]) == lines.index(floor[0]) + 1  # each dataset's lines end with its chance
    assert not any(line.startswith("random-") for line in lines)
