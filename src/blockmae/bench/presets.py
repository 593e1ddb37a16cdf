"""The bench's presets: which model and clips it measures, at what batch and for how many steps.

Pure data (no torch): the harness, the lever-accuracy and the pipeline benches all start from a preset.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    config: str | None  # built-in config name or YAML path; None: the defaults
    overrides: tuple[str, ...]
    batch: dict  # per device type
    warmup_steps: dict  # per device type: (warm-up, timed)
    narrow: tuple[str, ...]  # lever: narrower stage decoders
    shallow: tuple[str, ...] | None  # lever: shallower lower-stage decoders (None: already one layer)
    about: str
    # Per-stage decoder sizing levers: the lower three stages' decoders lighter than the top one's
    # (`light_lower`), and lighter still, reconstructing a quarter of the hidden tubelets (`light_lower_masked`).
    light_lower: tuple[str, ...] | None = None
    light_lower_masked: tuple[str, ...] | None = None
    probe_data: str = "digits"  # what `--accuracy` probes by default: a data spec with train and test splits


TINY_LIGHT = "model.decoder.width=[32,32,32,64]"
DEIT_LIGHT_WIDTH, DEIT_LIGHT_DEPTH = "model.decoder.width=[96,96,96,192]", "model.decoder.depth=[1,1,1,4]"

PRESETS = {
    "tiny": Preset(
        "tiny", (), {"cpu": 32, "cuda": 256}, {"cpu": (2, 8), "cuda": (5, 20)},
        narrow=("model.decoder.width=32",), shallow=None,
        about="the tiny preset (configs/tiny.yaml): 12 x 96-d with LayerScale, 2 x 32 x 32 clips, 2 x 4 x 4 "
              "tubelets, tube masking 0.75, decoders 1 x 64-d",
        # the top decoder stays the default's (64-d, decoder masking 0.5)
        light_lower=(TINY_LIGHT,),
        light_lower_masked=(TINY_LIGHT, "model.decoder.mask_ratio=[0.75,0.75,0.75,0.5]"),
        probe_data="hierarchy,symbols=8,rules=4,n=512"),
    "tiny-scenes": Preset(
        "tiny-scenes", (), {"cpu": 32, "cuda": 256}, {"cpu": (2, 8), "cuda": (5, 20)},
        narrow=("model.decoder.width=32",), shallow=None,
        about="the tiny model at the first CPU preset's shape (configs/tiny-scenes.yaml): 12 x 96-d, "
              "8 x 32 x 32 clips, 2 x 4 x 4 tubelets, decoders 1 x 64-d",
        # the top decoder as E2E's (every hidden tubelet)
        light_lower=(TINY_LIGHT, "model.decoder.mask_ratio=[0.5,0.5,0.5,0.0]"),
        light_lower_masked=(TINY_LIGHT, "model.decoder.mask_ratio=[0.75,0.75,0.75,0.0]")),
    "deit-s": Preset(
        None, ("model.size=vit-small", "model.frames=16", "model.image_size=128", "model.tubelet=2",
               "model.patch=8"),
        {"cpu": 2, "cuda": 32}, {"cpu": (1, 3), "cuda": (5, 20)},
        narrow=("model.decoder.width=96",), shallow=("model.decoder.depth=[1,1,1,4]",),
        about="DeiT-S (12 x 384-d, 6 heads), 16 x 128 x 128 clips, 2 x 8 x 8 tubelets (the paper's), "
              "VideoMAE-S decoders 4 x 192-d",
        # one 96-d layer in the lower stages, the top decoder the default's (4 x 192-d, decoder masking 0.5)
        light_lower=(DEIT_LIGHT_WIDTH, DEIT_LIGHT_DEPTH),
        light_lower_masked=(DEIT_LIGHT_WIDTH, DEIT_LIGHT_DEPTH, "model.decoder.mask_ratio=[0.75,0.75,0.75,0.5]")),
}


def preset(name: str) -> Preset:
    """The preset called `name`; an unknown name stops the bench with the choices."""
    if name not in PRESETS:
        raise SystemExit(f"unknown preset '{name}'; choose from {', '.join(PRESETS)}")
    return PRESETS[name]
