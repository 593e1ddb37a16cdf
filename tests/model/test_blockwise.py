"""The regimes as plans over one model: gradients go exactly where the regime table in docs/design.md says."""

import pytest
import torch

from blockmae.model import BlockMAE
from blockmae.regimes import Plan, StagePlan, regime_plan
from blockmae.train.step import Micro, Stepper
from helpers import small_config


def _model(k=4, seed=0):
    torch.manual_seed(seed)
    return BlockMAE(small_config(f"model.partition={k}", "model.decoder.mask_ratio=0.0").model)


def _batch(model, b=2):
    g = torch.Generator().manual_seed(3)
    return torch.randn(b, 3, 4, 32, 32, generator=g), model.make_mask(b, g)


def _grads(model, video, mask, plan, lean):
    """The training step's losses and gradients (before the optimiser update)."""
    model.zero_grad(set_to_none=True)
    losses = Stepper(model, lean=lean).backward(plan, [Micro(video, mask)], 1)
    return losses, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("regime,phase", [("simultaneous", 0), ("sequential", 2), ("e2e", 0), ("deep-supervision", 0)])
def test_memory_lean_step_equals_one_backward_of_the_sum(regime, phase):
    model = _model()
    video, mask = _batch(model)
    plan = regime_plan(regime, 4, phase)
    loss_a, lean = _grads(model, video, mask, plan, lean=True)
    loss_b, full = _grads(model, video, mask, plan, lean=False)
    assert loss_a == loss_b
    assert lean.keys() == full.keys() and len(lean) > 0
    for name in lean:
        torch.testing.assert_close(lean[name], full[name], rtol=1e-5, atol=1e-7)


def test_one_stage_simultaneous_is_exactly_e2e():
    model = _model(k=1)
    video, mask = _batch(model)
    loss_s, sim = _grads(model, video, mask, regime_plan("simultaneous", 1), lean=True)
    loss_e, e2e = _grads(model, video, mask, regime_plan("e2e", 1), lean=True)
    assert loss_s == loss_e
    assert sim.keys() == e2e.keys() and all(torch.equal(sim[n], e2e[n]) for n in sim)


def test_no_gradient_crosses_a_stage_boundary_when_detached():
    model = _model()
    video, mask = _batch(model)
    losses = model.run_plan(video, mask, regime_plan("simultaneous", 4))
    losses[2].backward()  # stage 3's loss alone
    owners = {id(p): k for k in range(4) for m in model.stage_modules(k) for p in m.parameters()}
    for p in model.parameters():
        if id(p) in owners and owners[id(p)] != 2:
            assert p.grad is None
    assert all(p.grad is not None for p in model.layers[model.stage_bounds(2)[0]].parameters())


def test_e2e_monitors_read_detached_features():
    model = _model()
    video, mask = _batch(model)
    _, e2e = _grads(model, video, mask, regime_plan("e2e", 4), lean=True)
    model.zero_grad(set_to_none=True)
    model.losses(video, mask)[-1].backward()  # the top loss alone, no monitors
    top_only = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in top_only.items():
        assert torch.allclose(e2e[name], grad, atol=1e-7), name
    assert any(n.startswith("decoders.0.") for n in e2e), "monitor decoders must still train"


def test_deep_supervision_sends_every_loss_through_the_encoder():
    model = _model()
    video, mask = _batch(model)
    _, ds = _grads(model, video, mask, regime_plan("deep-supervision", 4), lean=True)
    model.zero_grad(set_to_none=True)
    sum(model.losses(video, mask)).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ds[name], p.grad, rtol=1e-5, atol=1e-7)


def test_sequential_phase_trains_only_its_stage():
    model = _model()
    video, mask = _batch(model)
    losses, grads = _grads(model, video, mask, regime_plan("sequential", 4, phase=1), lean=True)
    assert losses[0] is None and losses[1] is not None and losses[2] is None and losses[3] is None
    trained = {f"layers.{i}." for i in range(*model.stage_bounds(1))} | {"decoders.1."}
    assert grads and all(any(n.startswith(t) for t in trained) for n in grads)


def test_encode_returns_raw_unmasked_outputs_at_stage_ends():
    model = _model(k=2).eval()
    video, _ = _batch(model)
    with torch.no_grad():
        layers, blocks = model.encode(video, at="layers"), model.encode(video, at="blocks")
    assert len(layers) == 4 and len(blocks) == 2
    assert blocks[0].shape == (2, model.embed.num_tokens, 64)
    assert torch.equal(blocks[0], layers[1]) and torch.equal(blocks[1], layers[3])
    with pytest.raises(ValueError, match="'blocks' or 'layers'"):
        model.encode(video, at="stages")


def test_wrong_video_shape_names_the_expected_one():
    model = _model(k=1)
    with pytest.raises(ValueError, match=r"expected \(B, C, T, H, W\) = \(B, 3, 4, 32, 32\)"):
        model.encode(torch.zeros(1, 3, 4, 16, 32))


def test_plan_table_matches_the_design():
    monitor, top = StagePlan(detach=False, encoder_loss=False), StagePlan(detach=False)
    assert regime_plan("e2e", 3) == Plan((monitor, monitor, top), 3)
    assert regime_plan("sequential", 3, 2) == Plan((StagePlan(frozen=True),) * 2 + (StagePlan(),), 3)
    assert regime_plan("sequential", 3, 0).active == 1
    with pytest.raises(ValueError):
        regime_plan("greedy", 3)
