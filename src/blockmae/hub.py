"""Weights on disk: `load` anything blockmae can read, and write Hugging Face / official VideoMAE files.

Readable: a run directory (its latest checkpoint), one checkpoint directory, a Hugging Face
`save_pretrained` VideoMAE directory, or a directory `convert` produced. Nothing here needs
`transformers`: Hugging Face directories are plain `config.json` + safetensors.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import PRESETS, Config, config_from_dict, load_config, save_config
from .model import BlockMAE
from .model.convert import from_hf, from_official, hf_config_from_model, model_overrides_from_hf, to_hf, to_official
from .checkpoint import WEIGHTS, damage, latest_intact_checkpoint, load_plain, load_weights, save_checkpoint


def build_model(cfg: Config) -> BlockMAE:
    """A freshly initialised model for `cfg` (a Config or its `model` section)."""
    return BlockMAE(cfg.model if isinstance(cfg, Config) else cfg)


def _is_hf_dir(path: Path) -> bool:
    cfg = path / "config.json"
    return cfg.is_file() and json.loads(cfg.read_text()).get("model_type") == "videomae"


def _hf_weights(path: Path) -> dict:
    if (path / "model.safetensors").is_file():
        return load_file(str(path / "model.safetensors"))
    if (path / "pytorch_model.bin").is_file():
        return load_plain(path / "pytorch_model.bin", "in an environment you trust, load it and save its state_dict "
                          "beside config.json as model.safetensors (safetensors.torch.save_file), which blockmae reads "
                          "instead", map_location="cpu")
    raise FileNotFoundError(f"{path} has config.json but no model.safetensors or pytorch_model.bin")


def resolve_checkpoint(path: str | Path) -> tuple[Config, Path]:
    """A run directory or checkpoint directory -> (its config, the checkpoint directory), which must be intact."""
    path = Path(path)
    if (path / "config.yaml").is_file():
        intact, damaged = latest_intact_checkpoint(path)
        if damaged:
            newest, problem = damaged[0]
            fallback = f"; the newest intact one is {intact}: pass it instead" if intact else ""
            raise ValueError(f"checkpoint {newest} is damaged: {problem}{fallback}")
        if intact is None:
            raise FileNotFoundError(f"run directory {path} has no checkpoint yet (checkpoints/<step>/{WEIGHTS})")
        return load_config(path / "config.yaml"), intact
    if (path / WEIGHTS).is_file() and (path.parent.parent / "config.yaml").is_file():
        problem = damage(path)
        if problem:
            raise ValueError(f"checkpoint {path} is damaged: {problem}")
        return load_config(path.parent.parent / "config.yaml"), path
    raise FileNotFoundError(f"{path} is not a blockmae run directory or checkpoint (no config.yaml found)")


def load(path: str | Path) -> BlockMAE:
    """A model in eval mode from a run directory, a checkpoint, or a Hugging Face VideoMAE directory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if _is_hf_dir(path):
        cfg = config_from_dict({"model": model_overrides_from_hf(json.loads((path / "config.json").read_text()))})
        model = BlockMAE(cfg.model)
        missing, unexpected = model.load_state_dict(from_hf(_hf_weights(path)), strict=False)
        if [k for k in missing if not k.startswith("decoders.")] or unexpected:
            raise ValueError(f"{path}: weights do not fit a VideoMAE of its config.json "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        if missing:
            warnings.warn(f"{path} holds an encoder without a pretraining decoder: the encoder is loaded, the decoder "
                          "is randomly initialised (reconstruction losses are meaningless)")
        return model.eval()
    cfg, ckpt = resolve_checkpoint(path)
    model = BlockMAE(cfg.model)
    model.load_state_dict(load_weights(ckpt))
    return model.eval()


# ----------------------------------------------------------------------------- export / import

def _is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / "checkpoints").is_dir()


def prepare_target(out: str | Path, directory: bool, force: bool = False) -> Path:
    """Check where a conversion writes: never into a run directory, never over existing files unless `force`."""
    out = Path(out)
    if directory:
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out} is a file; give a directory to write into")
        if out.is_dir() and _is_run_dir(out):
            raise ValueError(f"{out} is a blockmae run directory; convert never writes into one (its model would no "
                             "longer match its run): give a new directory")
        if out.is_dir() and any(out.iterdir()) and not force:
            raise ValueError(f"{out} is not empty; give a new directory, or --force to write over its files")
    else:
        if out.is_dir():
            raise ValueError(f"{out} is a directory; give a file name, e.g. {out / 'videomae.pth'}")
        if out.exists() and not force:
            raise ValueError(f"{out} exists; give a new file name, or --force to overwrite it")
    return out


def stage_index(model: BlockMAE, stage: int | None) -> int:
    """A stage counted from 1 (None: the top one) -> its 0-based index, checked against the model's K."""
    if stage is None:
        return model.num_stages - 1
    if not 1 <= stage <= model.num_stages:
        raise ValueError(f"--stage {stage} does not exist: the model has {model.num_stages} stage(s), counted from 1 "
                         f"(default: the top one, {model.num_stages})")
    return stage - 1


def save_hf(model: BlockMAE, out: str | Path, stage: int = -1) -> Path:
    """A `save_pretrained`-style directory that `VideoMAEForPreTraining.from_pretrained` reads (`stage`: 0-based
    index of the stage whose decoder is exported)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(hf_config_from_model(model.cfg, stage), indent=2))
    sd = {k: v.contiguous() for k, v in to_hf(model.state_dict(), stage).items()}
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def save_official(model: BlockMAE, out: str | Path, stage: int = -1) -> Path:
    """An official VideoMAE pretraining checkpoint ({'model': state_dict}) as a .pth file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": to_official(model.state_dict(), stage)}, out)
    return out


# Head counts of the known official VideoMAE shapes, by width: the one thing a state dict cannot tell.
ENCODER_HEADS = {p["width"]: p["heads"] for p in PRESETS.values()} | {1280: 16}
DECODER_HEADS = {p["decoder_width"]: p["decoder_heads"] for p in PRESETS.values()} | {640: 8}


def _heads(given: int | None, width: int, known: dict, flag: str) -> int:
    if given is not None:
        if width % given:
            raise ValueError(f"{flag} {given} does not divide the width {width}")
        return given
    if width not in known:
        raise ValueError(f"official weights do not record the number of attention heads, and width {width} is not a "
                         f"known VideoMAE shape ({', '.join(f'{w}: {h}' for w, h in sorted(known.items()))}): pass {flag}")
    return known[width]


def official_model_config(sd: dict, frames: int, image_size: int, heads: int | None = None,
                          decoder_heads: int | None = None) -> dict:
    """Read the architecture off official weights; frames and image size are not stored in them, head counts
    come from the flags or the known VideoMAE shapes (never guessed)."""
    sd = sd.get("model", sd)
    prefix = "encoder." if any(k.startswith("encoder.") for k in sd) else ""
    w = sd[f"{prefix}patch_embed.proj.weight"]  # (width, channels, tubelet, patch, patch)
    width = w.shape[0]
    depth = len({k.split(".")[2 if prefix else 1] for k in sd if k.startswith(f"{prefix}blocks.")})
    model = {"width": width, "depth": depth, "heads": _heads(heads, width, ENCODER_HEADS, "--heads"), "channels": w.shape[1],
             "tubelet": w.shape[2], "patch": w.shape[3], "frames": frames, "image_size": image_size,
             "mlp_ratio": sd[f"{prefix}blocks.0.mlp.fc1.weight"].shape[0] / width,
             "qkv_bias": f"{prefix}blocks.0.attn.q_bias" in sd,
             "decoder": {"input_norm": f"{prefix}norm.weight" in sd}}
    if "decoder.head.weight" in sd:
        dwidth = sd["decoder.head.weight"].shape[1]
        model["decoder"].update(width=dwidth, heads=_heads(decoder_heads, dwidth, DECODER_HEADS, "--decoder-heads"),
                                depth=len({k.split(".")[2] for k in sd if k.startswith("decoder.blocks.")}))
    return model


def import_weights(cfg: Config, state_dict: dict, out: str | Path) -> Path:
    """Write converted weights as a blockmae run directory (config.yaml + checkpoints/0)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = BlockMAE(cfg.model)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if [k for k in missing if not k.startswith("decoders.")] or unexpected:
        raise ValueError(f"converted weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    save_config(cfg, out / "config.yaml")
    save_checkpoint(out, 0, model, {"step": 0, "source": "converted"})
    return out


def import_hf(src: str | Path, out: str | Path) -> Path:
    src = Path(src)
    cfg = config_from_dict({"model": model_overrides_from_hf(json.loads((src / "config.json").read_text()))})
    return import_weights(cfg, from_hf(_hf_weights(src)), out)


def import_official(src: str | Path, out: str | Path, frames: int, image_size: int, heads: int | None = None,
                    decoder_heads: int | None = None) -> Path:
    try:  # official training checkpoints that pickle their argparse arguments are refused here, naming the class
        sd = load_plain(src, "in an environment you trust, load it and re-save only its weights, "
                             "torch.save({'model': state_dict}, 'weights.pth'), then convert that file", map_location="cpu")
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"{src} could not be read as plain weights ({type(e).__name__}); is it an official VideoMAE "
                         ".pth file?") from None
    model_cfg = official_model_config(sd, frames, image_size, heads, decoder_heads)
    return import_weights(config_from_dict({"model": model_cfg}), from_official(sd), out)

