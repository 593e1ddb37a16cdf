"""The regimes aimed at the blockwise gap: where each loss's gradient goes (overlapping blocks), what the noise
touches (noisy interfaces), and when end-to-end fine-tuning starts (blockwise-finetune)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from blockmae.config import ConfigError
from blockmae.model import BlockMAE
from blockmae.regimes import REGIMES, regime_plan
from blockmae.train.engine import pretrain
from blockmae.train.step import Micro, Stepper
from helpers import small_config


def _model(*extra, depth=8, k=4, seed=0):
    torch.manual_seed(seed)
    return BlockMAE(small_config(f"model.depth={depth}", f"model.partition={k}", *extra).model)


def _batch(model, b=2):
    g = torch.Generator().manual_seed(3)
    return torch.randn(b, 3, 4, 32, 32, generator=g), model.make_mask(b, g)


def _grads(model, video, mask, plan, lean=True, seed=0):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same noise draws in both calls of a comparison
    losses = Stepper(model, lean=lean).backward(plan, [Micro(video, mask)], 1)
    return losses, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_overlap_loss_reaches_its_stage_and_the_last_layers_of_the_one_before_only():
    model = _model()  # 4 stages of 2 layers
    video, mask = _batch(model)
    for n in (1, 2):
        model.zero_grad(set_to_none=True)
        losses = model.run_plan(video, mask, regime_plan("overlap", 4, settings={"overlap": n}))
        losses[2].backward()  # stage 3's loss alone
        start, end = model.stage_bounds(2)
        reached = {name.split(".")[0] + "." + name.split(".")[1] for name, p in model.named_parameters()
                   if p.grad is not None and p.grad.abs().sum() > 0}
        assert reached == {f"layers.{i}" for i in range(start - n, end)} | {"decoders.2"}, n


def test_overlap_memory_lean_step_equals_one_backward_of_the_sum_and_differs_from_simultaneous():
    model = _model()
    video, mask = _batch(model)
    plan = regime_plan("overlap", 4)
    lean_losses, lean = _grads(model, video, mask, plan, lean=True)
    full_losses, full = _grads(model, video, mask, plan, lean=False)
    assert lean_losses == full_losses and lean.keys() == full.keys()
    for name in lean:
        torch.testing.assert_close(lean[name], full[name], rtol=1e-5, atol=1e-7)
    sim_losses, sim = _grads(model, video, mask, regime_plan("simultaneous", 4))
    assert sim_losses == full_losses  # the same forward: overlap changes only where gradients go
    last_of_stage_1 = "layers.1.mlp.fc1.weight"
    assert not torch.allclose(sim[last_of_stage_1], full[last_of_stage_1])  # stage 2's loss now reaches it
    torch.testing.assert_close(sim["layers.0.mlp.fc1.weight"], full["layers.0.mlp.fc1.weight"])  # but no deeper


def test_interface_noise_applies_to_detached_stage_inputs_in_training_only():
    model = _model()
    video, mask = _batch(model)
    noisy, plain = regime_plan("noisy", 4), regime_plan("simultaneous", 4)
    noise = REGIMES["noisy"].settings().interface_noise
    assert [s.noise for s in noisy.stages] == [0.0] + [noise] * 3 and noise > 0
    model.train()
    with_noise, _ = _grads(model, video, mask, noisy)
    without, _ = _grads(model, video, mask, plain)
    assert with_noise[0] == without[0]  # stage 1 reads the clip, not a stage output
    assert all(a != b for a, b in zip(with_noise[1:], without[1:]))
    again, _ = _grads(model, video, mask, noisy)
    assert again == with_noise  # the noise comes from torch's seeded generator (restored on resume)
    model.eval()
    with torch.no_grad():
        assert [l.item() for l in model.run_plan(video, mask, noisy)] == \
            [l.item() for l in model.run_plan(video, mask, plain)]
    zero = regime_plan("noisy", 4, settings={"interface_noise": 0.0})
    model.train()
    assert _grads(model, video, mask, zero)[0] == without


def test_blockwise_finetune_is_simultaneous_then_e2e_for_the_last_steps():
    regime = REGIMES["blockwise-finetune"]
    settings = {"finetune_steps": 3}
    assert regime.phase_ends(10, 4, settings) == [7, 10]
    assert regime.plan_for(4, 0, settings) == regime_plan("simultaneous", 4)
    assert regime.plan_for(4, 1, settings) == regime_plan("e2e", 4)


def test_blockwise_finetune_trains_and_logs_its_two_phases(tmp_path):
    cfg = small_config("train.regime=blockwise-finetune", "train.regime_settings.finetune_steps=2", "train.max_steps=5",
                       "model.partition=2", "data.train=digits,n=16", "train.batch_size=4", "train.log_every=1",
                       "train.checkpoint_every=5", "train.progress=false")
    summary = pretrain(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == [1, 1, 1, 2, 2] and summary["regime"] == "blockwise-finetune"


@pytest.mark.parametrize("overrides, message", [
    (["train.regime=overlap", "model.partition=4", "train.regime_settings.overlap=2"],
     "train.regime_settings.overlap=2 is more layers than a stage"),
    (["train.regime=overlap", "train.regime_settings.overlap=0"], "train.regime_settings.overlap=0 must be at least 1"),
    (["train.regime=noisy", "train.regime_settings.interface_noise=-1"],
     r"train.regime_settings.interface_noise=-1.0 must be >= 0"),
    (["train.regime=overlap", "dist.mode=pipeline"], "dist.mode=pipeline needs train.regime=simultaneous or noisy"),
    (["train.regime=blockwise-finetune", "dist.mode=pipeline"], "needs train.regime="),
])
def test_bad_settings_are_refused_with_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        small_config("model.partition=2", *overrides)


def test_finetune_longer_than_the_run_is_refused(tmp_path):
    cfg = small_config("train.regime=blockwise-finetune", "train.regime_settings.finetune_steps=5", "train.max_steps=5",
                       "model.partition=2", "data.train=digits,n=16", "train.batch_size=4", "train.progress=false")
    with pytest.raises(ConfigError, match="too short to give each of 2 blockwise-finetune phases a step"):
        pretrain(cfg, tmp_path / "run")


def test_frozen_base_continues_a_run_with_its_lower_stages_fixed(tmp_path):
    common = ["model.partition=2", "data.train=digits,n=16", "train.batch_size=4", "train.checkpoint_every=2",
              "train.progress=false", "train.lr=1e-2"]
    pretrain(small_config("train.regime=simultaneous", "train.max_steps=2", *common), tmp_path / "base")
    source = load_file(str(tmp_path / "base" / "checkpoints" / "2" / "model.safetensors"))
    pretrain(small_config("train.regime=frozen-base", "train.regime_settings.frozen_stages=1",
                          f"train.init_from={tmp_path / 'base'}", "train.max_steps=2", *common), tmp_path / "continued")
    after = load_file(str(tmp_path / "continued" / "checkpoints" / "2" / "model.safetensors"))
    assert all(torch.equal(after[k], source[k]) for k in source if k.startswith(("embed.", "layers.0.", "layers.1.",
                                                                                 "decoders.0.")))
    assert not torch.equal(after["layers.2.mlp.fc1.weight"], source["layers.2.mlp.fc1.weight"])
    with pytest.raises(ConfigError, match="train.init_from=.*nowhere is neither"):
        pretrain(small_config("train.init_from=" + str(tmp_path / "nowhere"), "train.max_steps=2", *common),
                 tmp_path / "bad")
    with pytest.raises(ConfigError, match="train.regime_settings.frozen_stages=2 must be from 0 to 1"):
        small_config("train.regime=frozen-base", "train.regime_settings.frozen_stages=2", *common)
