import numpy as np
import torch

from blockmae.config import config_path, load_config
from blockmae.eval.reconstruction import held_out_losses, trivial_losses
from blockmae.model import BlockMAE
from blockmae.model.masking import make_mask


def test_trivial_losses_match_direct_loops():
    g = torch.Generator().manual_seed(0)
    targets = torch.randn(3, 8, 5, generator=g) + torch.arange(8.0).view(1, 8, 1)  # position-dependent means
    mask = make_mask("tube", 0.5, (2, 2, 2), 3, g)
    position_mean = targets.mean(0)
    got = trivial_losses(targets, mask, position_mean)
    zero, pos, vis, n = 0.0, 0.0, 0.0, 0
    for b in range(3):
        visible = [targets[b, i] for i in range(8) if not mask[b, i]]
        clip_mean = torch.stack(visible).mean(0)
        for i in range(8):
            if mask[b, i]:
                zero += float((targets[b, i] ** 2).sum())
                pos += float(((targets[b, i] - position_mean[i]) ** 2).sum())
                vis += float(((targets[b, i] - clip_mean) ** 2).sum())
                n += 5
    assert abs(got["zero"] - zero / n) < 1e-5
    assert abs(got["position_mean"] - pos / n) < 1e-5
    assert abs(got["visible_mean"] - vis / n) < 1e-5
    assert got["position_mean"] < got["zero"]  # the position means carry the offsets


def test_oracle_constant_is_each_clips_hidden_mean_and_no_constant_beats_it():
    g = torch.Generator().manual_seed(3)
    targets = torch.randn(4, 16, 6, generator=g) * torch.linspace(0.5, 2.0, 4).view(4, 1, 1)
    mask = make_mask("tube", 0.75, (2, 2, 4), 4, g)
    got = trivial_losses(targets, mask, targets.mean(0))
    t, m = targets.numpy().astype(np.float64), mask.numpy()
    squared = [((t[b][m[b]] - t[b][m[b]].mean(0)) ** 2).ravel() for b in range(4)]
    assert abs(got["oracle_constant"] - np.concatenate(squared).mean()) < 1e-6
    # every other constant per clip scores more: the copy, zero, and random constants
    assert got["oracle_constant"] < got["visible_mean"] and got["oracle_constant"] < got["zero"]
    oracle = [t[b][m[b]].mean(0) for b in range(4)]
    rng = np.random.default_rng(0)
    for _ in range(20):  # constants near the oracle's: none is lower
        other = np.concatenate([((t[b][m[b]] - oracle[b] - rng.normal(0, 0.3, 6)) ** 2).ravel() for b in range(4)])
        assert got["oracle_constant"] <= other.mean() + 1e-9


def test_held_out_losses_score_the_models_losses_on_fixed_masks():
    cfg = load_config(config_path("tiny"), ["model.depth=2", "model.partition=2", "model.width=32", "model.heads=2",
                               "model.frames=4", "model.image_size=16"])
    model = BlockMAE(cfg.model)
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(2, 3, 4, 16, 16, generator=g) for _ in range(2)]
    result = held_out_losses(model, lambda: iter(batches), "tube", 0.75)
    assert model.training  # left as it was
    assert result["clips"] == 4 and len(result["losses"]) == 2
    mask = model.make_mask(2, torch.Generator().manual_seed(10_007 + 1), "tube", 0.75)
    again = model.eval().losses(batches[1], mask)  # the second batch's loss under its fixed mask
    first = model.losses(batches[0], model.make_mask(2, torch.Generator().manual_seed(10_007), "tube", 0.75))
    assert abs(result["losses"][1] - (first[1].item() + again[1].item()) / 2) < 1e-6
    assert set(result["baselines"]) == {"zero", "position_mean", "visible_mean", "oracle_constant"}
