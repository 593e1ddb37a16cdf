"""train.monitor_fit_steps: E2E's monitors fitted after training on the frozen encoder (and train.monitor_every=0:
monitors never train during training)."""

import json
import shutil

import pytest
import torch

from blockmae.checkpoint import load_weights
from blockmae.config import ConfigError
from blockmae.model import BlockMAE
from blockmae.regimes import monitor_fit_plan
from blockmae.train.engine import pretrain, start_monitors_from_top
from helpers import small_config

FAST = ["train.regime=e2e", "model.partition=2", "data.train=digits,n=16", "train.batch_size=4", "train.max_steps=6",
        "train.log_every=1", "train.progress=false", "train.lr=1e-2", "model.image_size=16", "model.patch=4",
        "model.width=32", "model.heads=2", "model.decoder.width=16", "model.decoder.heads=1"]
FIT = ["train.monitor_every=0", "train.monitor_fit_steps=4", "train.checkpoint_every=2", "train.keep_last=5"]


def weights(run, step):
    return load_weights(run / "checkpoints" / str(step))


def test_fitting_trains_only_the_monitors_after_training(tmp_path):
    pretrain(small_config(*FAST, "train.monitor_every=0", "train.checkpoint_every=6"), tmp_path / "plain")
    summary = pretrain(small_config(*FAST, *FIT), tmp_path / "fit")
    plain, trained, fitted = weights(tmp_path / "plain", 6), weights(tmp_path / "fit", 6), weights(tmp_path / "fit", 10)
    monitor = {name for name in fitted if name.startswith("decoders.0.")}
    assert monitor and plain.keys() == fitted.keys()
    for name in plain:
        assert torch.equal(plain[name], trained[name]), name  # training itself is the same run
        # fitting changes the monitor decoder and nothing else
        assert torch.equal(plain[name], fitted[name]) != (name in monitor), name
    log = [json.loads(line) for line in (tmp_path / "fit" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == list(range(1, 11))
    assert all(row["losses"][0] is None and row["losses"][1] is not None for row in log[:6])  # monitors off
    assert all(row["losses"][0] is not None and row["losses"][1] is None for row in log[6:])  # only the monitor fits
    assert summary["steps"] == 10 and len(summary["held_out"]["losses"]) == 2


def test_an_interrupted_fit_resumes_exactly(tmp_path):
    full = tmp_path / "full"
    pretrain(small_config(*FAST, *FIT), full)
    cut = tmp_path / "cut"  # interrupted after fit step 2 of 4 (checkpoint 8)
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "checkpoints" / "10")
    (cut / "summary.json").unlink()
    pretrain(small_config(*FAST, *FIT), cut)
    a, b = weights(full, 10), weights(cut, 10)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_finished_run_gets_its_monitors_fitted_by_resuming_it_with_fit_steps(tmp_path):
    pretrain(small_config(*FAST, *FIT), tmp_path / "at-once")
    later = tmp_path / "later"
    pretrain(small_config(*FAST, *FIT[:1], *FIT[2:]), later)  # trained without fitting
    summary = pretrain(small_config(*FAST, *FIT), later)  # the same run, now with 4 fitting steps
    a, b = weights(tmp_path / "at-once", 10), weights(later, 10)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert summary["steps"] == 10 and "monitor_fit_steps: 4" in (later / "config.yaml").read_text()


def test_the_fit_plan_gives_gradients_to_the_monitor_decoders_only():
    torch.manual_seed(0)
    model = BlockMAE(small_config("model.partition=[2, 1, 1]").model)
    g = torch.Generator().manual_seed(1)
    video = torch.randn(2, 3, 4, 32, 32, generator=g)
    losses = model.run_plan(video, model.make_mask(2, g), monitor_fit_plan(3))
    assert losses[2] is None and not any(loss.grad_fn is None for loss in losses[:2])
    sum(losses[:2]).backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == name.startswith(("decoders.0.", "decoders.1.")), name


def test_monitors_start_from_the_top_decoder_where_the_shapes_match():
    torch.manual_seed(0)
    model = BlockMAE(small_config("model.partition=[2, 1, 1]", "model.decoder.width=[16, 32, 32]",
                                  "model.decoder.heads=1").model)
    start_monitors_from_top(model)
    narrow, same, top = (d.state_dict() for d in model.decoders)
    assert all(torch.equal(same[k], top[k]) for k in top)
    assert narrow["mask_token"].shape != top["mask_token"].shape  # another width: left as it was


@pytest.mark.parametrize("extra, message", [
    (["train.monitor_every=-1"], "train.monitor_every=-1 must be at least 0"),
    (["train.monitor_fit_steps=-2"], "train.monitor_fit_steps=-2 must be at least 0"),
    (["train.regime=simultaneous", "train.monitor_fit_steps=5"], "needs train.regime=e2e"),
    (["model.partition=1", "train.monitor_fit_steps=5"], "at least 2 stages"),
])
def test_bad_monitor_settings_are_refused(extra, message):
    with pytest.raises(ConfigError, match=message):
        small_config(*extra)
