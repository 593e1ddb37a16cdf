"""Decoder masking (VideoMAE v2's dual masking) and the cheaper training forward: same numbers, less work."""

import pytest
import torch

from blockmae.config import ConfigError
from blockmae.model import BlockMAE
from blockmae.model.masking import gather_tokens, split_indices
from blockmae.model.objective import pixel_targets, reconstruction_loss, tubelet_targets
from blockmae.model.vit import Layer
from blockmae.regimes import regime_plan
from blockmae.train.batches import decoder_draws
from blockmae.train.step import Micro, Stepper
from helpers import small_config


def _model(*overrides, k=2):
    torch.manual_seed(0)
    return BlockMAE(small_config(f"model.partition={k}", "model.decoder.mask_ratio=0.0", *overrides).model)


def _batch(model, b=3):
    g = torch.Generator().manual_seed(3)
    return torch.randn(b, 3, 4, 32, 32, generator=g), model.make_mask(b, g)


def _record_decoder_calls(model):
    """Wrap every decoder's forward to record (stage, hidden_idx, predictions)."""
    calls = []
    for k, dec in enumerate(model.decoders):
        def wrapped(visible, visible_idx, hidden_idx, _orig=dec.forward, _k=k):
            pred = _orig(visible, visible_idx, hidden_idx)
            calls.append((_k, hidden_idx, pred))
            return pred
        dec.forward = wrapped
    return calls


def _grads(model, video, mask, plan, lean, seed):
    """The training step's losses and gradients, the decoder-masking draws seeded with `seed` (as the engine's)."""
    model.zero_grad(set_to_none=True)
    stepper = Stepper(model, lean=lean)
    losses = stepper.backward(plan, [Micro(video, mask, draws=decoder_draws(seed, 0, 0, video.shape[0]))], 1)
    return losses, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_ratio_zero_is_the_plain_forward_and_draws_nothing():
    default, explicit = _model(), _model("model.decoder.mask_ratio=0")
    video, mask = _batch(default)
    state = torch.get_rng_state()
    for model in (default, explicit):
        model.train()
        plan = regime_plan("simultaneous", 2)
        trained = model.run_plan(video, mask, plan)
        full = model.run_plan(video, mask, plan, decoder_masking=False)
        assert [l.item() for l in trained] == [l.item() for l in full] == [l.item() for l in model.losses(video, mask)]
    assert torch.equal(torch.get_rng_state(), state)  # no random draws at ratio 0
    assert [l.item() for l in default.losses(video, mask)] == [l.item() for l in explicit.losses(video, mask)]


@pytest.mark.parametrize("ratio", [0.5, 0.75])
def test_decoder_predicts_the_expected_subset_and_the_loss_covers_only_it(ratio):
    model = _model(f"model.decoder.mask_ratio={ratio}").train()
    video, mask = _batch(model)
    _, hidden_idx = split_indices(mask)
    n_hidden = hidden_idx.shape[1]
    expected = n_hidden - int(ratio * n_hidden)
    calls = _record_decoder_calls(model)
    losses = model.run_plan(video, mask, regime_plan("simultaneous", 2), draws=decoder_draws(0, 0, 0, 3))
    targets = model.targets(video)  # the reference objective, every token
    assert len(calls) == 2
    for (k, idx, pred), loss in zip(calls, losses):
        assert idx.shape == (3, expected) and pred.shape == (3, expected, targets.shape[-1])
        for b in range(3):  # a subset of this clip's hidden tokens, no repeats, in token order
            assert set(idx[b].tolist()) <= set(hidden_idx[b].tolist())
            assert idx[b].tolist() == sorted(set(idx[b].tolist()))
        torch.testing.assert_close(loss, reconstruction_loss(pred, gather_tokens(targets, idx)), rtol=1e-5, atol=1e-6)
    assert not torch.equal(calls[0][1], calls[1][1])  # each stage draws its own subset


def test_per_stage_ratios_and_evaluation_uses_every_hidden_token():
    model = _model("model.decoder.mask_ratio=[0.0,0.5]").train()
    video, mask = _batch(model)
    n_hidden = split_indices(mask)[1].shape[1]
    calls = _record_decoder_calls(model)
    model.run_plan(video, mask, regime_plan("simultaneous", 2))
    assert [c[1].shape[1] for c in calls] == [n_hidden, n_hidden - int(0.5 * n_hidden)]
    calls.clear()
    model.losses(video, mask)  # evaluation: always all hidden tubelets
    model.eval()
    model.run_plan(video, mask, regime_plan("simultaneous", 2))  # eval mode: no decoder masking
    assert [c[1].shape[1] for c in calls] == [n_hidden] * 4


def test_memory_lean_step_equals_the_summed_backward_under_decoder_masking():
    model = _model("model.decoder.mask_ratio=0.5", k=4)
    model.train()
    video, mask = _batch(model)
    for regime in ("simultaneous", "e2e"):
        plan = regime_plan(regime, 4)
        loss_a, lean = _grads(model, video, mask, plan, lean=True, seed=5)
        loss_b, full = _grads(model, video, mask, plan, lean=False, seed=5)
        assert loss_a == loss_b and lean.keys() == full.keys()
        for name in lean:
            torch.testing.assert_close(lean[name], full[name], rtol=1e-5, atol=1e-7)


def test_mask_ratio_is_validated():
    for bad in ("1.0", "-0.1", "[0.5]"):
        with pytest.raises(ConfigError, match="mask_ratio"):
            small_config("model.partition=2", f"model.decoder.mask_ratio={bad}")
    assert small_config("train.compile=true").train.compile is True
    assert small_config().train.compile is False


# ----------------------------------------------------------------------------- the cheaper forward, same numbers

def test_visible_only_embedding_and_hidden_only_targets_match_the_reference():
    for norm_pix in ("true", "false"):
        model = _model(f"model.norm_pix={norm_pix}")
        video, mask = _batch(model)
        visible_idx, hidden_idx = split_indices(mask)
        x, batch = model.masked_batch(video, mask)
        assert torch.equal(batch.visible_idx, visible_idx) and torch.equal(batch.hidden_idx, hidden_idx)
        torch.testing.assert_close(x, gather_tokens(model.embed(video), visible_idx), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(batch.target, gather_tokens(model.targets(video), hidden_idx), rtol=1e-5, atol=1e-5)
        c = model.cfg
        all_targets = tubelet_targets(model.embed.tubelets(video), c.channels, c.pixel_mean, c.pixel_std, c.norm_pix)
        torch.testing.assert_close(all_targets, pixel_targets(video, c.pixel_mean, c.pixel_std, c.tubelet, c.patch,
                                                              c.norm_pix), rtol=1e-5, atol=1e-5)


def test_constant_tubelets_normalise_to_rounding_noise_in_both():
    """A flat tubelet (black background) has std 0: its normalised target is (x - mean) / 1e-6, i.e. rounding
    noise scaled by 1e6, in VideoMAE, Hugging Face and here alike; the noise differs between implementations."""
    model = _model()
    video = torch.full((1, 3, 4, 32, 32), -2.0)
    c = model.cfg
    ours = tubelet_targets(model.embed.tubelets(video), c.channels, c.pixel_mean, c.pixel_std, True)
    reference = pixel_targets(video, c.pixel_mean, c.pixel_std, c.tubelet, c.patch, True)
    assert ours.abs().max() < 0.1 and reference.abs().max() < 0.1


def test_top_layer_computes_only_the_tokens_it_returns():
    torch.manual_seed(0)
    layer = Layer(32, 2)
    x = torch.randn(2, 10, 32)
    torch.testing.assert_close(layer(x, last=7), layer(x)[:, -7:], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(layer(x, last=10), layer(x), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_compile_layers_keeps_parameter_names():
    model = _model()
    names = list(model.state_dict())
    model.compile_layers()
    assert list(model.state_dict()) == names
