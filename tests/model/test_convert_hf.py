"""Our VideoMAE against Hugging Face's (the reference): same weights, same mask -> same numbers."""

import torch
from transformers import VideoMAEConfig, VideoMAEForPreTraining

from blockmae.model import BlockMAE
from blockmae.model.convert import (from_hf, from_official, hf_config_from_model, model_overrides_from_hf, to_hf,
                                    to_official)
from blockmae.config import config_from_dict

HF_KW = dict(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=64, num_hidden_layers=3,
             num_attention_heads=4, intermediate_size=256, decoder_hidden_size=32, decoder_num_hidden_layers=2,
             decoder_num_attention_heads=2, decoder_intermediate_size=128, layer_norm_eps=1e-6)


def _pair(**extra):
    torch.manual_seed(0)
    hf = VideoMAEForPreTraining(VideoMAEConfig(**HF_KW, **extra)).eval()
    with torch.no_grad():  # random biases and norms, so a swapped or dropped parameter shows up
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = config_from_dict({"model": model_overrides_from_hf(hf.config.to_dict())})
    ours = BlockMAE(cfg.model).eval()
    ours.load_state_dict(from_hf(hf.state_dict()))
    return hf, ours


def _inputs(model, batch=3):
    video = torch.randn(batch, 3, 4, 32, 32)
    mask = model.make_mask(batch, torch.Generator().manual_seed(1))
    return video, mask


def _assert_same_pretraining_output(hf, ours):
    """Same clips, same mask: the same reconstructions and loss, to float rounding."""
    video, mask = _inputs(ours)
    with torch.no_grad():
        out = hf(video.transpose(1, 2), bool_masked_pos=mask)
        (loss,) = ours.losses(video, mask)
        (pred,) = ours.reconstruct(video, mask)
    assert (pred - out.logits).abs().max() <= 1e-4
    assert abs(loss.item() - out.loss.item()) <= 1e-4


def test_hidden_states_match_at_every_layer():
    hf, ours = _pair(use_mean_pooling=True)
    video, _ = _inputs(ours)
    with torch.no_grad():
        theirs = hf.videomae(video.transpose(1, 2), output_hidden_states=True).hidden_states[1:]
        mine = ours.encode(video, at="layers")
    assert len(mine) == len(theirs) == 3
    for a, b in zip(mine, theirs):
        assert (a - b).abs().max() <= 1e-4


def test_pretraining_loss_and_predictions_match():
    for pooling in (True, False):  # False: HF's final encoder norm, our decoder input_norm
        hf, ours = _pair(use_mean_pooling=pooling)
        _assert_same_pretraining_output(hf, ours)


def test_raw_pixel_target_matches():
    hf, ours = _pair(norm_pix_loss=False)
    assert ours.cfg.norm_pix is False
    video, mask = _inputs(ours)
    with torch.no_grad():
        assert abs(ours.losses(video, mask)[0].item() - hf(video.transpose(1, 2), bool_masked_pos=mask).loss.item()) <= 1e-4


def test_round_trips_are_lossless():
    hf, ours = _pair(use_mean_pooling=False)
    sd = ours.state_dict()
    back = to_hf(sd)
    assert back.keys() == hf.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in hf.state_dict().items())
    assert all(torch.equal(from_hf(back)[k], v) for k, v in sd.items())
    official = to_official(sd)
    assert "encoder.blocks.0.attn.qkv.weight" in official and "encoder.norm.weight" in official
    again = from_official({"model": official})
    assert again.keys() == sd.keys() and all(torch.equal(again[k], v) for k, v in sd.items())


def test_exported_config_rebuilds_the_reference():
    hf, ours = _pair(use_mean_pooling=False)
    exported = VideoMAEForPreTraining(VideoMAEConfig(**hf_config_from_model(ours.cfg)))
    exported.load_state_dict(to_hf(ours.state_dict()))
    video, mask = _inputs(ours)
    with torch.no_grad():
        assert torch.allclose(exported(video.transpose(1, 2), bool_masked_pos=mask).loss,
                              hf(video.transpose(1, 2), bool_masked_pos=mask).loss)


def test_blockwise_model_exports_the_chosen_stage_decoder():
    cfg = config_from_dict({"model": {**model_overrides_from_hf(HF_KW | {"use_mean_pooling": False}),
                                      "depth": 4, "partition": 2}})
    ours = BlockMAE(cfg.model).eval()
    hf = VideoMAEForPreTraining(VideoMAEConfig(**hf_config_from_model(cfg.model, stage=-1))).eval()
    hf.load_state_dict(to_hf(ours.state_dict(), stage=-1))
    video, mask = _inputs(ours)
    with torch.no_grad():
        assert abs(ours.losses(video, mask)[-1].item() - hf(video.transpose(1, 2), bool_masked_pos=mask).loss.item()) <= 1e-4


def test_save_pretrained_files_load(tmp_path):
    """transformers writes q_bias/v_bias and `qv_bias` in its files, not its in-memory names."""
    from blockmae import load

    hf, _ = _pair(use_mean_pooling=False)
    hf.save_pretrained(tmp_path)
    ours = load(tmp_path)
    video, mask = _inputs(ours)
    with torch.no_grad():
        assert abs(ours.losses(video, mask)[0].item() - hf(video.transpose(1, 2), bool_masked_pos=mask).loss.item()) <= 1e-4


def _layer_scaled(scale=0.1):
    """A model with LayerScale whose gains are far from their start, so a gain left out or folded into the wrong
    linear changes the output."""
    cfg = config_from_dict({"model": {**model_overrides_from_hf(HF_KW | {"use_mean_pooling": False}),
                                      "layer_scale": scale}})
    torch.manual_seed(0)
    ours = BlockMAE(cfg.model).eval()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "gamma" in name:
                p.copy_(torch.rand_like(p) * 2 - 0.5)
    return cfg, ours


def test_layer_scale_starts_at_its_value_and_exports_folded_to_hugging_face():
    cfg, ours = _layer_scaled()
    assert BlockMAE(cfg.model).layers[2].gamma_2.eq(0.1).all()
    hf = VideoMAEForPreTraining(VideoMAEConfig(**hf_config_from_model(cfg.model))).eval()
    hf.load_state_dict(to_hf(ours.state_dict()))  # strict: no gamma keys left over
    _assert_same_pretraining_output(hf, ours)


def test_official_weights_with_layer_scale_load_into_a_model_without_it():
    cfg, ours = _layer_scaled()
    official = to_official(ours.state_dict())
    assert not any("gamma" in k for k in official)  # exported folded: loads into init_values=0 VideoMAE
    # Official checkpoints trained with init_values > 0 carry the gains; they are folded on import.
    with_gains = {f"encoder.blocks.{k[len('layers.'):]}": v for k, v in ours.state_dict().items()
                  if k.startswith("layers.")}
    with_gains |= {k: v for k, v in official.items() if not k.startswith("encoder.blocks.")}
    plain = BlockMAE(config_from_dict({"model": {**model_overrides_from_hf(HF_KW | {"use_mean_pooling": False})}}).model)
    plain.load_state_dict(from_official({"model": with_gains}))
    video, _ = _inputs(ours)
    with torch.no_grad():
        for a, b in zip(plain.eval().encode(video, at="layers"), ours.encode(video, at="layers")):
            assert (a - b).abs().max() <= 1e-4
