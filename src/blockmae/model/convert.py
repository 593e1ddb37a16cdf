"""State-dict adapters: Hugging Face `VideoMAEForPreTraining` and official VideoMAE <-> blockmae.

Our layout differs from both only in names and in the fused qkv (Hugging Face keeps q, k, v
separate). VideoMAE's single decoder, its `encoder_to_decoder` projection, mask token and
the encoder's final norm map onto the decoder of one stage (the top one by default): in
blockmae that final norm is the decoder's `input_norm`, so `encode` stays raw.
"""

from __future__ import annotations

import torch

from ..config import PRESETS

HF_LAYER = {  # Hugging Face layer sub-keys -> ours (q/k/v handled separately)
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
}
OFFICIAL_TOP = {  # official names outside the blocks -> ours, relative to the decoder's stage
    "encoder.norm": "input_norm",
    "encoder_to_decoder": "proj",
    "decoder.norm": "norm",
    "decoder.head": "head",
}


# ----------------------------------------------------------------------------- configs

def model_overrides_from_hf(hf: dict) -> dict:
    """A Hugging Face VideoMAEConfig (as a dict) -> a nested dict for our `model` section."""
    width, depth, heads = hf["hidden_size"], hf["num_hidden_layers"], hf["num_attention_heads"]
    size = next((name for name, p in PRESETS.items() if (p["width"], p["depth"], p["heads"]) == (width, depth, heads)),
                min(PRESETS, key=lambda n: abs(PRESETS[n]["width"] - width)))
    dec_width = hf.get("decoder_hidden_size", 384)
    if hf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"hidden_act='{hf['hidden_act']}' is not supported; blockmae's layers use exact GELU")
    return {
        "size": size, "width": width, "depth": depth, "heads": heads,
        "mlp_ratio": hf.get("intermediate_size", 4 * width) / width,
        "frames": hf.get("num_frames", 16), "image_size": hf.get("image_size", 224),
        "tubelet": hf.get("tubelet_size", 2), "patch": hf.get("patch_size", 16),
        "channels": hf.get("num_channels", 3), "qkv_bias": hf.get("qv_bias", hf.get("qkv_bias", True)),
        "norm_eps": hf.get("layer_norm_eps", 1e-12), "norm_pix": hf.get("norm_pix_loss", True),
        "partition": 1,
        "decoder": {
            "depth": hf.get("decoder_num_hidden_layers", 4), "width": dec_width,
            "heads": hf.get("decoder_num_attention_heads", 6),
            "mlp_ratio": hf.get("decoder_intermediate_size", 4 * dec_width) / dec_width,
            "input_norm": not hf.get("use_mean_pooling", True),
        },
    }


def _stage_value(value, stage: int):
    return value[stage] if isinstance(value, list) else value


def hf_config_from_model(cfg, stage: int = -1) -> dict:
    """Our ModelConfig -> the kwargs of a Hugging Face VideoMAEConfig, using stage `stage`'s decoder."""
    d = cfg.decoder
    dec_width = _stage_value(d.width, stage)
    return {
        "model_type": "videomae", "architectures": ["VideoMAEForPreTraining"],
        "hidden_size": cfg.width, "num_hidden_layers": cfg.depth, "num_attention_heads": cfg.heads,
        "intermediate_size": int(cfg.width * cfg.mlp_ratio), "hidden_act": "gelu",
        "image_size": cfg.image_size, "patch_size": cfg.patch, "num_channels": cfg.channels,
        "num_frames": cfg.frames, "tubelet_size": cfg.tubelet,
        "qv_bias": cfg.qkv_bias, "qkv_bias": cfg.qkv_bias,  # transformers >= 5 reads qv_bias; older, qkv_bias
        "layer_norm_eps": cfg.norm_eps, "norm_pix_loss": cfg.norm_pix,
        "use_mean_pooling": not d.input_norm,
        "decoder_hidden_size": dec_width, "decoder_num_hidden_layers": _stage_value(d.depth, stage),
        "decoder_num_attention_heads": _stage_value(d.heads, stage),
        "decoder_intermediate_size": int(dec_width * d.mlp_ratio),
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
    }


# ----------------------------------------------------------------------------- layers

def _layer_from_hf(sd: dict, src: str, dst: str, out: dict) -> None:
    q, k, v = (sd[f"{src}.attention.attention.{n}.weight"] for n in ("query", "key", "value"))
    out[f"{dst}.attn.qkv.weight"] = torch.cat([q, k, v])
    attn = f"{src}.attention.attention"
    # In memory transformers names them query/value.bias; its save_pretrained files use q_bias/v_bias.
    for ours, names in (("q_bias", ("query.bias", "q_bias")), ("v_bias", ("value.bias", "v_bias"))):
        found = [f"{attn}.{n}" for n in names if f"{attn}.{n}" in sd]
        if found:
            out[f"{dst}.attn.{ours}"] = sd[found[0]]
    for theirs, ours in HF_LAYER.items():
        for p in ("weight", "bias"):
            out[f"{dst}.{ours}.{p}"] = sd[f"{src}.{theirs}.{p}"]


def _layer_to_hf(sd: dict, src: str, dst: str, out: dict) -> None:
    q, k, v = sd[f"{src}.attn.qkv.weight"].chunk(3)
    for name, w in zip(("query", "key", "value"), (q, k, v)):
        out[f"{dst}.attention.attention.{name}.weight"] = w.contiguous()
    if f"{src}.attn.q_bias" in sd:
        out[f"{dst}.attention.attention.query.bias"] = sd[f"{src}.attn.q_bias"]
        out[f"{dst}.attention.attention.value.bias"] = sd[f"{src}.attn.v_bias"]
    for theirs, ours in HF_LAYER.items():
        for p in ("weight", "bias"):
            out[f"{dst}.{theirs}.{p}"] = sd[f"{src}.{ours}.{p}"]


def fold_layer_scale(sd: dict) -> dict:
    """The same network without LayerScale: each layer's gains multiplied into the linear that feeds them
    (x + g * (W h + b) = x + (g W) h + g b), for formats whose layers have none (Hugging Face's VideoMAE,
    official VideoMAE built with init_values=0). Our and official names agree (`attn.proj`, `mlp.fc2`)."""
    out = {k: v for k, v in sd.items() if not k.endswith((".gamma_1", ".gamma_2"))}
    for key, gain in sd.items():
        if key.endswith((".gamma_1", ".gamma_2")):
            layer = key[: -len("gamma_1")]
            linear = layer + ("attn.proj" if key.endswith("1") else "mlp.fc2")
            out[f"{linear}.weight"] = gain[:, None] * sd[f"{linear}.weight"]
            out[f"{linear}.bias"] = gain * sd[f"{linear}.bias"]
    return out


def _count(sd: dict, prefix: str) -> int:
    """Number of numbered children under `prefix` (e.g. 'layers.' -> 12)."""
    ids = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
    return max(ids) + 1 if ids else 0


# ----------------------------------------------------------------------------- Hugging Face

def from_hf(sd: dict, decoder_stage: int = 0) -> dict:
    """A Hugging Face VideoMAE state dict (pretraining or bare encoder) -> ours.

    The decoder, if present, becomes stage `decoder_stage`'s decoder.
    """
    sd = {k.removeprefix("videomae."): v for k, v in sd.items()}
    out = {"embed.proj.weight": sd["embeddings.patch_embeddings.projection.weight"],
           "embed.proj.bias": sd["embeddings.patch_embeddings.projection.bias"]}
    for i in range(_count(sd, "encoder.layer.")):
        _layer_from_hf(sd, f"encoder.layer.{i}", f"layers.{i}", out)
    dec = f"decoders.{decoder_stage}"
    if "layernorm.weight" in sd:
        out[f"{dec}.input_norm.weight"], out[f"{dec}.input_norm.bias"] = sd["layernorm.weight"], sd["layernorm.bias"]
    if "encoder_to_decoder.weight" in sd:
        out[f"{dec}.proj.weight"] = sd["encoder_to_decoder.weight"]
        out[f"{dec}.mask_token"] = sd["mask_token"]
        for j in range(_count(sd, "decoder.decoder_layers.")):
            _layer_from_hf(sd, f"decoder.decoder_layers.{j}", f"{dec}.layers.{j}", out)
        for name in ("norm", "head"):
            for p in ("weight", "bias"):
                out[f"{dec}.{name}.{p}"] = sd[f"decoder.{name}.{p}"]
    return out


def to_hf(sd: dict, stage: int = -1) -> dict:
    """Our state dict -> Hugging Face `VideoMAEForPreTraining`, with stage `stage`'s decoder."""
    sd = fold_layer_scale(sd)
    stage = stage % _count(sd, "decoders.")
    out = {"videomae.embeddings.patch_embeddings.projection.weight": sd["embed.proj.weight"],
           "videomae.embeddings.patch_embeddings.projection.bias": sd["embed.proj.bias"]}
    for i in range(_count(sd, "layers.")):
        _layer_to_hf(sd, f"layers.{i}", f"videomae.encoder.layer.{i}", out)
    dec = f"decoders.{stage}"
    if f"{dec}.input_norm.weight" in sd:
        out["videomae.layernorm.weight"], out["videomae.layernorm.bias"] = sd[f"{dec}.input_norm.weight"], sd[f"{dec}.input_norm.bias"]
    out["encoder_to_decoder.weight"] = sd[f"{dec}.proj.weight"]
    out["mask_token"] = sd[f"{dec}.mask_token"]
    for j in range(_count(sd, f"{dec}.layers.")):
        _layer_to_hf(sd, f"{dec}.layers.{j}", f"decoder.decoder_layers.{j}", out)
    for name in ("norm", "head"):
        for p in ("weight", "bias"):
            out[f"decoder.{name}.{p}"] = sd[f"{dec}.{name}.{p}"]
    return out


# ----------------------------------------------------------------------------- official VideoMAE

def from_official(sd: dict, decoder_stage: int = 0) -> dict:
    """Official VideoMAE keys (pretraining `encoder.blocks...`, or fine-tuned `blocks...`) -> ours.

    A fine-tuned checkpoint's classifier (`fc_norm`, `head`) is dropped: blockmae keeps encoders only.
    """
    if "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not any(k.startswith("encoder.") for k in sd):  # fine-tuned: the encoder has no prefix
        sd = {f"encoder.{k}": v for k, v in sd.items() if not k.startswith(("fc_norm", "head"))}
    sd = fold_layer_scale(sd)  # weights trained with init_values > 0 load into a model without LayerScale
    dec = f"decoders.{decoder_stage}"
    out = {}
    for k, v in sd.items():
        if k.startswith("encoder.patch_embed.proj."):
            out["embed.proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("encoder.blocks."):
            out["layers." + k[len("encoder.blocks."):]] = v
        elif k.startswith("decoder.blocks."):
            out[f"{dec}.layers." + k[len("decoder.blocks."):]] = v
        elif k == "mask_token":
            out[f"{dec}.mask_token"] = v
        else:  # the fixed sine-cosine table and an unused classifier head fall through
            name, _, param = k.rpartition(".")
            if name in OFFICIAL_TOP:
                out[f"{dec}.{OFFICIAL_TOP[name]}.{param}"] = v
    return out


def to_official(sd: dict, stage: int = -1) -> dict:
    """Our state dict -> official VideoMAE pretraining keys, with stage `stage`'s decoder (LayerScale folded:
    the file loads into VideoMAE built with its default init_values=0)."""
    sd = fold_layer_scale(sd)
    stage = stage % _count(sd, "decoders.")
    dec = f"decoders.{stage}."
    ours_to_official = {v: k for k, v in OFFICIAL_TOP.items()}
    out = {}
    for k, v in sd.items():
        if k.startswith("embed.proj."):
            out["encoder.patch_embed.proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("layers."):
            out["encoder.blocks." + k[len("layers."):]] = v
        elif k.startswith(dec + "layers."):
            out["decoder.blocks." + k[len(dec + "layers."):]] = v
        elif k == dec + "mask_token":
            out["mask_token"] = v
        elif k.startswith(dec):
            name, _, param = k[len(dec):].rpartition(".")
            out[f"{ours_to_official[name]}.{param}"] = v
    return out
