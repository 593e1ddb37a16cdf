"""Typed configuration: dataclasses, YAML load/save, dotted overrides, validation.

A config is plain values. `load_config(path, overrides)` gives a fully resolved `Config`
(presets expanded, every default written out) that `save_config` writes back verbatim,
so `RUN_DIR/config.yaml` alone rebuilds a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError
from .regimes import REGIMES, get_regime

# width, depth, heads, and the VideoMAE decoder that goes with each size.
PRESETS = {
    "vit-tiny": dict(width=192, depth=12, heads=3, decoder_width=96, decoder_heads=3),
    "vit-small": dict(width=384, depth=12, heads=6, decoder_width=192, decoder_heads=3),
    "vit-base": dict(width=768, depth=12, heads=12, decoder_width=384, decoder_heads=6),
    "vit-large": dict(width=1024, depth=24, heads=16, decoder_width=512, decoder_heads=8),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DecoderConfig:
    # An int applies to every stage's decoder; a list gives one value per stage.
    depth: int | list[int] = 4
    width: int | list[int] | None = None  # None: the preset's decoder width
    heads: int | list[int] | None = None  # None: the preset's decoder heads
    mlp_ratio: float = 4.0
    # LayerNorm on the encoder features a decoder reads (VideoMAE's final encoder norm).
    input_norm: bool = True
    # Decoder masking (VideoMAE v2's dual masking): during training each decoder reconstructs a
    # random subset of the hidden tubelets, skipping this share of them (and their mask tokens).
    # 0: every hidden tubelet (VideoMAE). A list gives one value per stage. Evaluation uses all.
    # 0.75 makes blockwise steps ~2x cheaper but cost ~3 pp on motion probes (docs/performance.md).
    mask_ratio: float | list[float] = 0.0


@dataclass
class ModelConfig:
    size: str = "vit-tiny"
    width: int | None = None  # None: from `size`
    depth: int | None = None
    heads: int | None = None
    mlp_ratio: float = 4.0
    frames: int = 16
    image_size: int = 112
    tubelet: int = 2
    patch: int = 16
    channels: int = 3
    # An int K splits the depth into K equal stages; a list gives each stage's layer count.
    # A loaded config always holds the list (resolved once, in `resolve`).
    partition: int | list[int] = 1
    qkv_bias: bool = True  # VideoMAE: learned query and value biases, no key bias
    # Target: per-tubelet, per-channel normalised pixels (VideoMAE); false: raw [0, 1] pixels.
    norm_pix: bool = True
    norm_eps: float = 1e-6
    # How input clips are normalised; the objective undoes it to build pixel targets.
    pixel_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    pixel_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    decoder: DecoderConfig = field(default_factory=DecoderConfig)


@dataclass
class MaskConfig:
    kind: str = "tube"  # tube | random
    ratio: float = 0.9


@dataclass
class DataConfig:
    train: str = "digits"
    test: str | None = None  # held-out spec for the end-of-run per-stage loss; None: train spec, test split
    num_workers: int = 0
    strict: bool = False  # True: a sample that fails to load is an error instead of being skipped


@dataclass
class TrainConfig:
    regime: str = "simultaneous"
    batch_size: int = 32
    max_steps: int | None = None  # None: derived from `epochs`
    epochs: int | None = None
    lr: float = 1.5e-4  # base LR for a batch of 256; the effective LR scales with the batch
    min_lr: float = 1e-6
    warmup_steps: int | None = None  # None: 5% of the steps (of each phase when sequential)
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float | None = None
    accum_steps: int = 1
    # Backward each stage right after its forward, so only one stage's graph is alive.
    memory_lean: bool = True
    # Sequential regime: share of max_steps for each stage's phase; None: equal.
    phase_split: list[float] | None = None
    # Weight of each stage's loss; None: all 1.
    loss_weights: list[float] | None = None
    seed: int = 0
    amp: str = "none"  # none | bf16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 10
    checkpoint_every: int = 500
    keep_last: int = 2
    snapshot_every: int | None = None  # permanent checkpoints for learning-dynamics analysis
    tensorboard: bool = False
    progress: bool = True
    # torch.compile each encoder layer and decoder (BlockMAE.compile_layers); false: eager.
    compile: bool = False


@dataclass
class DistConfig:
    # Under torchrun (docs/distributed.md). none: one process. ddp: data parallel, train.batch_size is the
    # global batch, split across ranks. pipeline: stage k on rank k (simultaneous regime, K ranks).
    mode: str = "none"  # none | ddp | pipeline
    backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | nccl | gloo


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dist: DistConfig = field(default_factory=DistConfig)


# Keys that may change when a run resumes (they do not change what is learned).
RESUMABLE_KEYS = {
    "train.max_steps", "train.epochs", "train.log_every", "train.checkpoint_every",
    "train.keep_last", "train.snapshot_every", "train.tensorboard", "train.progress",
    "train.device", "train.compile", "data.num_workers", "data.test", "data.strict",
    "dist.mode", "dist.backend",  # every mode learns what one process learns (to float rounding)
}


# ----------------------------------------------------------------------------- dict <-> dataclass

def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value, tp, key: str):
    """Check `value` against the annotation `tp`, converting where YAML/CLI is loose (int -> float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        # Prefer an exact type match (so 4 stays an int in `int | list[int]`).
        for arg in sorted((a for a in args if a is not type(None)), key=lambda a: typing.get_origin(a) is not None):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")


def _all_keys(cls, prefix="") -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):
        hints = typing.get_type_hints(cls)
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _all_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _unknown_key(key: str) -> ConfigError:
    valid = _all_keys(Config)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not close:  # also try matching the last component alone ("lr" -> "train.lr")
        tail = {k.rsplit(".", 1)[-1]: k for k in valid}
        hit = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(tail), n=1, cutoff=0.6)
        close = [tail[hit[0]]] if hit else []
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
    return ConfigError(f"unknown config key '{key}'{hint}")


def _from_dict(cls, data: dict, prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise _unknown_key(prefix + key)
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _from_dict(tp, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict) -> Config:
    """Build and validate a Config from a (possibly partial) nested dict."""
    cfg = _from_dict(Config, data or {})
    resolve(cfg)
    return cfg


# ----------------------------------------------------------------------------- overrides

def _set_dotted(data: dict, key: str, value) -> None:
    parts = key.split(".")
    node, cls = data, Config
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls)
        if part not in hints:
            raise _unknown_key(key)
        tp = hints[part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(tp):
                raise ConfigError(f"'{key}' is a section; set one of its keys, e.g. {key}.{dataclasses.fields(tp)[0].name}=...")
            node[part] = value
        else:
            if not dataclasses.is_dataclass(tp):
                raise _unknown_key(key)
            if node.get(part) is None:
                node[part] = {}
            node, cls = node[part], tp


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `key=value` strings (value parsed as YAML: 4, 1e-3, [3,3,3,3], null, true)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key=value, e.g. train.lr=1e-3")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(data, key.strip(), value)
    return data


# ----------------------------------------------------------------------------- validation

def partition_layers(partition: int | list[int], depth: int) -> list[int]:
    """Layer counts per stage; `partition` is K (equal split) or explicit counts."""
    if isinstance(partition, int):
        if partition < 1 or depth % partition:
            raise ConfigError(
                f"model.partition={partition} does not divide model.depth={depth} into equal stages; "
                f"use a divisor of {depth} or a list of layer counts that sums to {depth}")
        return [depth // partition] * partition
    if not partition or any(n < 1 for n in partition) or sum(partition) != depth:
        raise ConfigError(
            f"model.partition={partition} must be positive layer counts summing to model.depth={depth} "
            f"(they sum to {sum(partition)})")
    return list(partition)


def per_stage(value, k: int, key: str) -> list:
    if isinstance(value, list):
        if len(value) != k:
            raise ConfigError(f"{key} has {len(value)} entries but the model has {k} stages")
        return value
    return [value] * k


def _check_divides(size: int, unit: int, size_key: str, unit_key: str) -> None:
    if unit < 1 or size % unit:
        raise ConfigError(f"{size_key}={size} is not divisible by {unit_key}={unit}; "
                          f"choose sizes so that {size_key} is a multiple of {unit_key}")


def resolve(cfg: Config) -> Config:
    """Expand presets into explicit numbers and check that everything fits together."""
    m = cfg.model
    if m.size not in PRESETS:
        close = difflib.get_close_matches(m.size, list(PRESETS), n=1)
        raise ConfigError(f"model.size='{m.size}' is not a preset ({', '.join(PRESETS)})"
                          + (f"; did you mean '{close[0]}'?" if close else ""))
    preset = PRESETS[m.size]
    m.width = m.width or preset["width"]
    m.depth = m.depth or preset["depth"]
    m.heads = m.heads or preset["heads"]
    if m.width % m.heads:
        raise ConfigError(f"model.width={m.width} is not divisible by model.heads={m.heads}")
    _check_divides(m.frames, m.tubelet, "model.frames", "model.tubelet")
    _check_divides(m.image_size, m.patch, "model.image_size", "model.patch")
    for key in ("pixel_mean", "pixel_std"):
        if len(getattr(m, key)) != m.channels:
            raise ConfigError(f"model.{key} has {len(getattr(m, key))} values but model.channels={m.channels}")
    m.partition = partition_layers(m.partition, m.depth)
    k = len(m.partition)
    d = m.decoder
    d.width = d.width if d.width is not None else preset["decoder_width"]
    d.heads = d.heads if d.heads is not None else preset["decoder_heads"]
    for w, h in zip(per_stage(d.width, k, "model.decoder.width"), per_stage(d.heads, k, "model.decoder.heads")):
        if w % h:
            raise ConfigError(f"model.decoder.width={w} is not divisible by model.decoder.heads={h}")
    per_stage(d.depth, k, "model.decoder.depth")
    if any(isinstance(r, bool) or not 0.0 <= r < 1.0 for r in per_stage(d.mask_ratio, k, "model.decoder.mask_ratio")):
        raise ConfigError(f"model.decoder.mask_ratio={d.mask_ratio} must be in [0, 1): the share of hidden tubelets "
                          f"each decoder skips (0 = all reconstructed; VideoMAE v2 uses 0.5)")

    if cfg.mask.kind not in ("tube", "random"):
        raise ConfigError(f"mask.kind='{cfg.mask.kind}' must be 'tube' or 'random'")
    if not 0.0 < cfg.mask.ratio < 1.0:
        raise ConfigError(f"mask.ratio={cfg.mask.ratio} must be between 0 and 1 (VideoMAE: 0.9)")

    t = cfg.train
    get_regime(t.regime)
    if t.amp not in ("none", "bf16"):
        raise ConfigError(f"train.amp='{t.amp}' must be 'none' or 'bf16'")
    for key in ("batch_size", "accum_steps", "log_every", "checkpoint_every", "keep_last"):
        if getattr(t, key) < 1:
            raise ConfigError(f"train.{key}={getattr(t, key)} must be at least 1")
    for key in ("max_steps", "epochs"):
        if getattr(t, key) is not None and getattr(t, key) < 1:
            raise ConfigError(f"train.{key}={getattr(t, key)} must be at least 1")
    if t.max_steps is not None and t.epochs is not None:
        raise ConfigError(f"train.max_steps={t.max_steps} and train.epochs={t.epochs} are both set; set one (to train "
                          "by epochs from a config that sets max_steps, add train.max_steps=null)")
    if t.phase_split is not None:
        per_stage(t.phase_split, k, "train.phase_split")
        if any(s <= 0 for s in t.phase_split):
            raise ConfigError(f"train.phase_split={t.phase_split} must be positive shares")
    if t.loss_weights is not None:
        per_stage(t.loss_weights, k, "train.loss_weights")
    if len(t.betas) != 2:
        raise ConfigError(f"train.betas={t.betas} must be two numbers, e.g. [0.9, 0.95]")
    dist = cfg.dist
    if dist.mode not in ("none", "ddp", "pipeline"):
        raise ConfigError(f"dist.mode='{dist.mode}' must be 'none', 'ddp' or 'pipeline'")
    if dist.backend not in ("auto", "nccl", "gloo"):
        raise ConfigError(f"dist.backend='{dist.backend}' must be 'auto', 'nccl' or 'gloo'")
    pipelinable = [name for name, r in REGIMES.items() if r.blockwise and not r.phased]
    if dist.mode == "pipeline" and t.regime not in pipelinable:
        raise ConfigError(f"dist.mode=pipeline needs train.regime={' or '.join(pipelinable)} (got '{t.regime}'): only "
                          f"there does no gradient cross a stage boundary while every stage trains; use dist.mode=ddp")
    return cfg


# ----------------------------------------------------------------------------- files

CONFIG_DIR = Path(__file__).parent / "configs"


def builtin_configs() -> list[str]:
    """Names of the configs shipped with blockmae (`tiny`, `paper/deit-s`, ...)."""
    return sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yaml"))


def config_path(name: str | Path) -> Path:
    """A YAML path, or the name of a built-in config (`tiny` -> blockmae/configs/tiny.yaml)."""
    path = Path(name)
    if path.is_file():
        return path
    builtin = CONFIG_DIR / f"{name}.yaml"
    if builtin.is_file():
        return builtin
    names = ", ".join(builtin_configs())
    raise ConfigError(f"config '{name}' is neither a file nor a built-in config ({names})")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key}' appears twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from defaults), apply `key=value` overrides, validate."""
    data = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file '{path}' not found")
        try:
            data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file '{path}' is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file '{path}' must hold a mapping of sections (model:, train:, ...), "
                              f"not a {type(data).__name__}")
    apply_overrides(data, list(overrides))
    return config_from_dict(data)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def diff_configs(a: Config, b: Config) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[prefix + k] = v
        return out
    fa, fb = flat(to_dict(a)), flat(to_dict(b))
    return sorted(k for k in fa if fa[k] != fb.get(k))
