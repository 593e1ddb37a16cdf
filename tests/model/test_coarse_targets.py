"""The coarse-targets regime: the target it pools to (against a direct formula on pixels), which stages get it,
and where each loss's gradient goes."""

import pytest
import torch
import torch.nn.functional as F

from blockmae.config import ConfigError
from blockmae.model import BlockMAE
from blockmae.model.objective import coarse_targets, patchify, pixel_targets, reconstruction_loss, unnormalise
from blockmae.regimes import regime_plan
from helpers import small_config

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


@pytest.mark.parametrize("pool", [2, 4])
def test_coarse_target_is_the_normalised_target_of_the_clip_pooled_per_frame(pool):
    video = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    got = coarse_targets(pixel_targets(video, MEAN, STD, 2, 8), 3, 2, 8, pool, norm_pix=True)
    # directly: average pool x pool pixels of every frame, then VideoMAE's per-tubelet normalisation of the cells
    cells = patchify(F.avg_pool3d(unnormalise(video, MEAN, STD), (1, pool, pool)), 2, 8 // pool)
    cells = (cells - cells.mean(-2, keepdim=True)) / (cells.var(-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    b, n, q = 2, cells.shape[1], 8 // pool
    want = cells.view(b, n, 2, q, 1, q, 1, 3).expand(b, n, 2, q, pool, q, pool, 3).reshape(b, n, -1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)  # eps enters the two formulas differently
    assert not torch.allclose(got, pixel_targets(video, MEAN, STD, 2, 8), atol=0.1)


def test_without_normalisation_the_coarse_target_is_the_cell_mean():
    video = torch.rand(1, 3, 2, 8, 8)
    got = coarse_targets(pixel_targets(video, MEAN, STD, 2, 8, norm_pix=False), 3, 2, 8, 2, norm_pix=False)
    pooled = F.avg_pool3d(unnormalise(video, MEAN, STD), (1, 2, 2)).repeat_interleave(2, 3).repeat_interleave(2, 4)
    torch.testing.assert_close(got, patchify(pooled, 2, 8).flatten(2))


def test_upper_half_of_the_stages_predict_the_coarse_target_and_gradients_stay_in_their_stage():
    torch.manual_seed(0)
    model = BlockMAE(small_config("model.depth=8", "model.partition=4", "model.decoder.mask_ratio=0.0").model)
    g = torch.Generator().manual_seed(3)
    video, mask = torch.randn(2, 3, 4, 32, 32, generator=g), model.make_mask(2, g)
    plan = regime_plan("coarse-targets", 4, settings={"target_pool": 4})
    assert [s.pool for s in plan.stages] == [1, 1, 4, 4] and plan.detached
    coarse = model.run_plan(video, mask, plan)
    plain = model.run_plan(video, mask, regime_plan("simultaneous", 4))
    assert [c.item() for c in coarse[:2]] == [p.item() for p in plain[:2]]
    # stage 3 by hand: its decoder's prediction against the pooled target
    x, batch = model.masked_batch(video, mask, embed=True)
    x = model.run_layers(x, 0, model.stage_bounds(2)[1])
    pred = model.decoders[2](x, batch.visible_idx, batch.hidden_idx)
    c = model.cfg
    want = reconstruction_loss(pred, coarse_targets(batch.target, c.channels, c.tubelet, c.patch, 4, c.norm_pix))
    torch.testing.assert_close(coarse[2], want)
    assert coarse[2].item() != plain[2].item()
    model.zero_grad(set_to_none=True)
    coarse[2].backward()
    start, end = model.stage_bounds(2)
    reached = {".".join(name.split(".")[:2]) for name, p in model.named_parameters()
               if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached == {f"layers.{i}" for i in range(start, end)} | {"decoders.2"}


@pytest.mark.parametrize("pool", ["3", "1", "8"])
def test_a_pool_that_does_not_cut_the_patch_into_cells_is_refused(pool):
    key = "train.regime_settings.target_pool"
    with pytest.raises(ConfigError, match=f"{key}={pool} must be at least 2, divide model.patch=8"):
        small_config("train.regime=coarse-targets", "model.partition=2", f"{key}={pool}")
    small_config("train.regime=simultaneous", "model.partition=2", f"{key}={pool}")  # another regime's: dropped
