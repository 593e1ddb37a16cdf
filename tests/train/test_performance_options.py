"""Speed options of the training loop: the fused AdamW kernel (the default) and train.compile."""

import pytest
import torch

import blockmae.model.blockwise as blockwise
from blockmae.model import BlockMAE
from blockmae.regimes import regime_plan
from blockmae.train.engine import pretrain
from blockmae.train.optim import build_optimizer, fused_adamw_available
from helpers import small_config


def _step(model, optimizer, video, mask):
    (loss,) = model.run_plan(video, mask, regime_plan("e2e", 1))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def test_fused_adamw_is_the_default_and_updates_as_the_plain_one():
    cfg = small_config("train.regime=e2e")
    torch.manual_seed(0)
    fused_model = BlockMAE(cfg.model)
    plain_model = BlockMAE(cfg.model)
    plain_model.load_state_dict(fused_model.state_dict())
    fused = build_optimizer(fused_model, 1e-3, 0.05, [0.9, 0.95])
    plain = build_optimizer(plain_model, 1e-3, 0.05, [0.9, 0.95], fused=False)
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]
    video = torch.randn(2, 3, 4, 32, 32)
    for step in range(3):
        mask = fused_model.make_mask(2, torch.Generator().manual_seed(step))
        assert _step(fused_model, fused, video, mask) == pytest.approx(_step(plain_model, plain, video, mask), abs=1e-5)
    torch.manual_seed(0)
    start = BlockMAE(cfg.model)  # the initial weights again
    for (name, a), b, a0 in zip(fused_model.named_parameters(), plain_model.parameters(), start.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)  # float rounding, nothing more
    assert any((a - a0).abs().max() > 1e-4 for a, a0 in zip(fused_model.parameters(), start.parameters()))
    # the groups are the engine's: no weight decay on norms, biases and mask tokens
    assert [g["weight_decay"] for g in fused.param_groups] == [0.05, 0.0]


def test_default_falls_back_where_there_is_no_fused_kernel():
    model = torch.nn.Linear(2, 2, device="meta")  # no fused AdamW kernel for the meta device
    assert not fused_adamw_available(list(model.parameters()))
    assert not build_optimizer(model, 1e-3, 0.0, [0.9, 0.95]).defaults["fused"]
    assert fused_adamw_available(list(torch.nn.Linear(2, 2).parameters()))


def test_train_compile_compiles_every_layer_and_decoder(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(blockwise.BlockMAE, "compile_layers", lambda self, **kw: calls.append(self.num_stages))
    cfg = small_config("data.train=digits,n=8", "train.batch_size=4", "train.max_steps=1", "train.progress=false",
                       "model.partition=2")
    pretrain(cfg, tmp_path / "off")
    assert calls == []
    cfg.train.compile = True
    pretrain(cfg, tmp_path / "on")
    assert calls == [2]
