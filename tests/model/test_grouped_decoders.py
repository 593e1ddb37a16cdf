"""The standard step's grouped decoders (model/grouped.py) compute what K separate decoders compute: the same
predictions, losses and gradients on every decoder parameter and on the encoder, to float32 rounding."""

import pytest
import torch

from blockmae.model import BlockMAE
from blockmae.model.grouped import grouped_forward, shape_key
from blockmae.model.masking import split_indices, subset_indices
from blockmae.regimes import regime_plan
from blockmae.train.step import Micro, Stepper
from helpers import small_config

TOL = dict(rtol=1e-5, atol=1e-6)


def _model(*overrides, k=4, device="cpu"):
    torch.manual_seed(0)
    return BlockMAE(small_config(f"model.partition={k}", "model.decoder.depth=2", *overrides).model).to(device)


def _batch(model, b=2, device="cpu"):
    g = torch.Generator().manual_seed(3)
    return torch.randn(b, 3, 4, 32, 32, generator=g).to(device), model.make_mask(b, g)


def _step(model, video, mask, regime, grouped):
    """The standard step's losses and gradients (decoder-masking draws from a fixed seed)."""
    model.grouped_decoders = grouped
    model.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    losses = Stepper(model, lean=False).backward(regime_plan(regime, model.num_stages), [Micro(video, mask)], 1)
    return losses, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _check_step(model, video, mask, regime):
    loss_g, grad_g = _step(model, video, mask, regime, grouped=True)
    loss_s, grad_s = _step(model, video, mask, regime, grouped=False)
    torch.testing.assert_close(torch.tensor(loss_g), torch.tensor(loss_s), **TOL)
    assert grad_g.keys() == grad_s.keys()
    assert all(any(n.startswith(f"decoders.{k}.") for n in grad_g) for k in range(model.num_stages))
    assert any(n.startswith("layers.") for n in grad_g) and any(n.startswith("embed.") for n in grad_g)
    for name in grad_g:
        torch.testing.assert_close(grad_g[name], grad_s[name], **TOL, msg=name)


@pytest.mark.parametrize("ratio", ["0.0", "0.5"])
@pytest.mark.parametrize("regime", ["simultaneous", "e2e", "deep-supervision"])
def test_grouped_step_equals_separate_decoders(regime, ratio):
    model = _model(f"model.decoder.mask_ratio={ratio}")
    model.train()
    _check_step(model, *_batch(model), regime)


def test_decoders_of_different_shapes_group_by_shape():
    # lighter lower decoders (narrower, shallower, more decoder masking), the top one as E2E's: two groups
    model = _model("model.decoder.width=[16,16,16,32]", "model.decoder.depth=[1,1,1,2]",
                   "model.decoder.heads=[2,2,2,2]", "model.decoder.mask_ratio=[0.75,0.75,0.75,0.5]")
    assert len({shape_key(d) for d in model.decoders}) == 2
    model.train()
    _check_step(model, *_batch(model), "simultaneous")


def test_grouped_forward_equals_each_decoder():
    model = _model()
    video, mask = _batch(model)
    visible, hidden = split_indices(mask)
    g = torch.Generator().manual_seed(1)
    features = [torch.randn(2, visible.shape[1], 64, generator=g, requires_grad=True) for _ in range(4)]
    subsets = [hidden.gather(1, subset_indices(2, hidden.shape[1], 0.5, g)) for _ in range(4)]
    grouped = grouped_forward(list(model.decoders), features, visible, subsets)
    separate = [dec(f, visible, h) for dec, f, h in zip(model.decoders, features, subsets)]
    for a, b in zip(grouped, separate):
        torch.testing.assert_close(a, b, **TOL)
    weights = [torch.randn(p.shape, generator=g) for p in grouped]
    ga = torch.autograd.grad(sum((p * w).sum() for p, w in zip(grouped, weights)), features + list(model.decoders.parameters()))
    gb = torch.autograd.grad(sum((p * w).sum() for p, w in zip(separate, weights)), features + list(model.decoders.parameters()))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, **TOL)


def test_evaluation_losses_are_unchanged_and_keys_are_per_stage():
    model = _model()
    keys = set(model.state_dict())
    assert any(k.startswith("decoders.3.layers.1.attn.qkv") for k in keys)
    video, mask = _batch(model)
    model.eval()
    with torch.no_grad():
        model.grouped_decoders = True
        grouped = model.losses(video, mask)
        model.grouped_decoders = False
        separate = model.losses(video, mask)
    torch.testing.assert_close(torch.stack(grouped), torch.stack(separate), **TOL)
    assert set(model.state_dict()) == keys


@pytest.mark.cuda
@pytest.mark.parametrize("regime", ["simultaneous", "e2e"])
def test_grouped_step_equals_separate_decoders_on_cuda(regime):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = _model("model.decoder.mask_ratio=0.5", device="cuda")
    model.train()
    video, mask = _batch(model, device="cuda")
    _check_step(model, video, mask, regime)


def test_one_stage_loss_alone_reaches_no_other_stage():
    # grouped, the other stages of the group get zero gradients (not None): the stacked weights join them
    model = _model()
    model.grouped_decoders = True
    video, mask = _batch(model)
    losses = model.run_plan(video, mask, regime_plan("simultaneous", 4))
    losses[2].backward()
    owners = {id(p): k for k in range(4) for m in model.stage_modules(k) + [model.decoders[k]] for p in m.parameters()}
    for p in model.parameters():
        if owners[id(p)] != 2:
            assert p.grad is None or not p.grad.any()
        else:
            assert p.grad is not None
