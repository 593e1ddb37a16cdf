"""LayerScale (model.layer_scale): what it changes at init, and that its gains train."""

import runpy
from pathlib import Path

import torch

from blockmae.config import config_from_dict
from blockmae.model import BlockMAE

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "token_collapse.py"


def test_layer_scale_keeps_tokens_distinct_through_an_untrained_encoder():
    """benchmarks/token_collapse.py, the measurement docs/depth_screen.md quotes: without LayerScale the 12 layers'
    shared branch outputs crowd out what is specific to each token; with it the top layer keeps the embedding's."""
    per_layer = runpy.run_path(str(SCRIPT))["per_layer"]
    overrides = ["data.train=hierarchy,symbols=8,rules=4,n=16", "model.frames=2", "mask.ratio=0.75"]
    plain = per_layer("tiny", overrides + ["model.layer_scale=0"], 16)
    scaled = per_layer("tiny", overrides + ["model.layer_scale=0.1"], 16)
    assert len(plain) == 13 and plain[0] == scaled[0]  # same embedding
    assert plain[12][0] < plain[0][0] - 0.2  # collapses
    assert abs(scaled[12][0] - scaled[0][0]) < 0.03  # does not


def test_layer_scale_gains_start_at_the_value_train_and_skip_weight_decay():
    from blockmae.train.optim import param_groups
    cfg = config_from_dict({"model": {"width": 32, "depth": 2, "heads": 2, "frames": 2, "image_size": 16, "patch": 8,
                                      "layer_scale": 0.05, "decoder": {"depth": 1, "width": 16, "heads": 2}}})
    model = BlockMAE(cfg.model)
    gains = [p for n, p in model.named_parameters() if "gamma" in n]
    assert len(gains) == 4 and all(torch.equal(g, torch.full((32,), 0.05)) for g in gains)
    no_decay = {id(p) for p in param_groups(model, 0.05)[1]["params"]}
    assert all(id(g) in no_decay for g in gains)
    video = torch.randn(2, 3, 2, 16, 16)
    (loss,) = model.losses(video, model.make_mask(2, torch.Generator().manual_seed(0), "tube", 0.5))
    loss.backward()
    assert all(g.grad is not None and g.grad.abs().sum() > 0 for g in gains)
    # Without LayerScale the state dict has no gains: checkpoints from before the option load unchanged.
    cfg.model.layer_scale = 0.0
    assert not any("gamma" in k for k in BlockMAE(cfg.model).state_dict())
