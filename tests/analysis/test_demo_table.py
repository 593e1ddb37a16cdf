"""The demo's printed final-block table: the random-init encoders as one line, chance beside every probe set."""

import numpy as np

from blockmae.demo import final_block_table
from helpers import CHANCE, TRIVIAL_LOSSES, synthetic_rows


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


def test_depth_lines_give_each_stage_margin_and_the_probe_per_block():
    from blockmae.demo import depth_lines
    rows = synthetic_rows(regimes=("e2e",), seeds=(0,), datasets=("digits",), steps=())
    lines = depth_lines(rows)
    stages = {r["block"]: r["value"] for r in rows if r["run"] == "vit-tiny-e2e-K4-s0" and r["metric"] == "recon_loss"
              and r["block"] is not None and r["step"] is None}
    best = TRIVIAL_LOSSES["oracle_constant"]  # the lowest trivial predictor in the synthetic rows
    margins = " / ".join(f"{100 * (best - stages[b]) / best:.1f}" for b in sorted(stages))
    loss_line = next(line for line in lines if "held-out loss per stage" in line)
    assert margins in loss_line and "per-clip oracle, 0.5500" in loss_line
    assert "does not pay" in loss_line  # every stage is above the oracle: negative margins
    floor = next(line for line in lines if "random init (3 seeds, mean)" in line)
    block1 = [r["value"] for r in rows if r["regime"] == "random" and r["metric"] == "probe_acc" and r["block"] == 1
              and r["target"] == "mean" and r["step"] is None]
    assert floor.split(": ")[-1].startswith(f"{100 * np.mean(block1):.1f} / ")
    trained = next(line for line in lines if line.startswith("digits: vit-tiny-e2e-K4-s0: probe"))
    values = [float(v) for v in trained.split(": ")[-1].split(" / ")]
    assert len(values) == 4 and values[-1] > values[0]  # the synthetic E2E rises with depth


def test_depth_lines_say_depth_pays_when_both_bars_are_cleared():
    from blockmae.demo import depth_lines
    rows = synthetic_rows(regimes=("e2e",), seeds=(0,), datasets=("digits",), steps=(), random_floor=())
    for r in rows:
        if r["metric"] == "recon_loss" and r["block"] is not None:
            r["value"] = 0.55 * (1 - 0.04 * r["block"])  # margins 4, 8, 12, 16 %: top 4x the first, above 10 %
    line = next(line for line in depth_lines(rows) if "held-out loss per stage" in line)
    assert "4.0 / 8.0 / 12.0 / 16.0" in line and "depth pays" in line
