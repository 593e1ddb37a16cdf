"""Per-stage decoder sizing: width, depth, heads and the decoder-masking share, one value for all stages or a list of K
(lower stages lighter than the top one); a list of another length, or a value out of range, is refused naming the key
and the fix."""

import pytest
import torch

from blockmae.errors import ConfigError
from blockmae.model import BlockMAE
from blockmae.model.masking import split_indices
from blockmae.regimes import regime_plan
from helpers import small_config

LIGHT = ("model.decoder.width=[16,16,16,32]", "model.decoder.depth=[1,1,1,2]", "model.decoder.heads=[1,2,2,4]",
         "model.decoder.mask_ratio=[0.75,0.5,0.5,0.0]")


def test_each_stage_gets_its_own_decoder_size_and_share():
    cfg = small_config("model.partition=4", *LIGHT)
    model = BlockMAE(cfg.model)
    assert [d.proj.out_features for d in model.decoders] == [16, 16, 16, 32]
    assert [len(d.layers) for d in model.decoders] == [1, 1, 1, 2]
    assert [d.layers[0].attn.heads for d in model.decoders] == [1, 2, 2, 4]
    assert model.decoder_mask_ratio == [0.75, 0.5, 0.5, 0.0]
    g = torch.Generator().manual_seed(0)
    video, mask = torch.randn(2, 3, 4, 32, 32, generator=g), model.make_mask(2, g)
    n = split_indices(mask)[1].shape[1]
    shapes = []
    for dec in model.decoders:  # record each decoder's predictions
        dec.register_forward_hook(lambda mod, args, out: shapes.append(out.shape[1]))
    model.train()
    losses = model.run_plan(video, mask, regime_plan("simultaneous", 4))
    assert shapes == [n - int(r * n) for r in (0.75, 0.5, 0.5, 0.0)] and all(torch.isfinite(x) for x in losses)


@pytest.mark.parametrize("key", ["width", "depth", "heads", "mask_ratio"])
def test_a_list_of_the_wrong_length_names_the_key_and_the_fix(key):
    value = {"width": "[16,32]", "depth": "[1,2]", "heads": "[2,2]", "mask_ratio": "[0.5,0.0]"}[key]
    with pytest.raises(ConfigError, match=rf"model\.decoder\.{key} has 2 entries but the model has 4 stages.*"
                                          rf"give 4 values, the bottom stage's first, or one value for every stage"):
        small_config("model.partition=4", f"model.decoder.{key}={value}")


@pytest.mark.parametrize("override,match", [
    ("model.decoder.width=[16,16,0,32]", r"model\.decoder\.width=\[16, 16, 0, 32\] must be whole numbers of at least 1"),
    ("model.decoder.depth=-1", r"model\.decoder\.depth=-1 must be whole numbers of at least 0"),
    ("model.decoder.heads=[2,2,3,2]", r"model\.decoder\.width=32 is not divisible by model\.decoder\.heads=3"),
])
def test_bad_sizes_are_refused(override, match):
    with pytest.raises(ConfigError, match=match):
        small_config("model.partition=4", override)
