"""train.monitor_every: E2E's monitor decoders train only every m-th step, and that changes nothing else."""

import dataclasses
import json

import torch

from blockmae.model import BlockMAE
from blockmae.regimes import regime_plan
from blockmae.checkpoint import latest_checkpoint, load_weights
from blockmae.train.engine import pretrain
from helpers import small_config

COMMON = ["train.regime=e2e", "model.partition=2", "data.train=digits,n=16", "train.batch_size=4", "train.max_steps=6",
          "train.log_every=1", "train.checkpoint_every=6", "train.progress=false", "train.lr=1e-2"]


def weights(run):
    return load_weights(latest_checkpoint(run))


def test_monitors_every_third_step_leave_the_encoder_and_top_decoder_bit_identical(tmp_path):
    pretrain(small_config(*COMMON), tmp_path / "every")
    pretrain(small_config(*COMMON, "train.monitor_every=3"), tmp_path / "third")
    every, third = weights(tmp_path / "every"), weights(tmp_path / "third")
    monitor = [name for name in every if name.startswith("decoders.0.")]
    assert monitor and every.keys() == third.keys()
    for name in every:
        same = torch.equal(every[name], third[name])
        assert same != (name in monitor), name  # only the monitor decoder differs (fewer updates)
    logged = [json.loads(line)["losses"] for line in (tmp_path / "third" / "log.jsonl").read_text().splitlines()]
    assert [row[0] is not None for row in logged] == [True, False, False, True, False, False]  # steps 0 and 3
    assert all(row[1] is not None for row in logged)


def test_a_monitor_off_step_computes_no_monitor_loss_and_the_same_top_loss():
    torch.manual_seed(0)
    model = BlockMAE(small_config("model.partition=2", "train.regime=e2e").model)
    g = torch.Generator().manual_seed(1)
    video, mask = torch.randn(2, 3, 4, 32, 32, generator=g), model.make_mask(2, g)
    on = regime_plan("e2e", 2)
    off = model.run_plan(video, mask, dataclasses.replace(on, monitors=False))
    full = model.run_plan(video, mask, on)
    assert off[0] is None and full[0] is not None and off[1].item() == full[1].item()
