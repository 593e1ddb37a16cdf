"""Expanding presets into explicit numbers (the partition into layer counts) and checking that a
config's values fit together; every error names the key and what to write instead."""

from __future__ import annotations

import difflib

from ..errors import ConfigError
from ..regimes import REGIMES, get_regime
from .schema import PRESETS, Config
from .settings import regime_settings


def decoder_mask_default(regime: str) -> float:
    """`model.decoder.mask_ratio` when the config leaves it null: 0.5 for the regimes that train every stage's
    decoder at every step (their K decoders are most of the step's cost; 0.5 halves it at a measured probe cost
    within 1 pp), 0 (VideoMAE's objective, as Hugging Face's) for the others."""
    r = get_regime(regime, "train.regime")
    return 0.5 if r.blockwise and not r.phased else 0.0


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
    """`value` for each of k stages: a list as given (one entry per stage, the bottom stage first), else repeated."""
    if isinstance(value, list):
        if len(value) != k:
            raise ConfigError(f"{key} has {len(value)} entries but the model has {k} stages (model.partition); "
                              f"give {k} values, the bottom stage's first, or one value for every stage")
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
    if isinstance(m.layer_scale, bool) or not 0.0 <= m.layer_scale <= 1.0:
        raise ConfigError(f"model.layer_scale={m.layer_scale} must be in [0, 1]: the starting gain of each layer's "
                          "branches (e.g. 0.1), or 0 for none")
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
    for key, least in (("width", 1), ("heads", 1), ("depth", 0)):
        if any(isinstance(v, bool) or not isinstance(v, int) or v < least
               for v in per_stage(getattr(d, key), k, f"model.decoder.{key}")):
            raise ConfigError(f"model.decoder.{key}={getattr(d, key)} must be whole numbers of at least {least}: one "
                              f"for every stage's decoder, or a list of {k}, one per stage")
    for w, h in zip(per_stage(d.width, k, "model.decoder.width"), per_stage(d.heads, k, "model.decoder.heads")):
        if w % h:
            raise ConfigError(f"model.decoder.width={w} is not divisible by model.decoder.heads={h}; per stage, "
                              f"choose heads that divide the width (lists of {k} values give each stage its own)")
    d.mask_ratio = d.mask_ratio if d.mask_ratio is not None else decoder_mask_default(cfg.train.regime)
    if any(isinstance(r, bool) or not 0.0 <= r < 1.0 for r in per_stage(d.mask_ratio, k, "model.decoder.mask_ratio")):
        raise ConfigError(f"model.decoder.mask_ratio={d.mask_ratio} must be in [0, 1): the share of hidden tubelets "
                          f"each decoder skips (0 = all reconstructed; VideoMAE v2 uses 0.5)")

    if cfg.mask.kind not in ("tube", "random"):
        raise ConfigError(f"mask.kind='{cfg.mask.kind}' must be 'tube' or 'random'")
    if not 0.0 < cfg.mask.ratio < 1.0:
        raise ConfigError(f"mask.ratio={cfg.mask.ratio} must be between 0 and 1 (VideoMAE: 0.9)")

    t = cfg.train
    regime = get_regime(t.regime)
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
    if t.loss_weights is not None:
        per_stage(t.loss_weights, k, "train.loss_weights")
    if len(t.betas) != 2:
        raise ConfigError(f"train.betas={t.betas} must be two numbers, e.g. [0.9, 0.95]")
    dist = cfg.dist
    if dist.mode not in ("none", "ddp", "pipeline"):
        raise ConfigError(f"dist.mode='{dist.mode}' must be 'none', 'ddp' or 'pipeline'")
    if dist.backend not in ("auto", "nccl", "gloo"):
        raise ConfigError(f"dist.backend='{dist.backend}' must be 'auto', 'nccl' or 'gloo'")
    if t.monitor_every < 0:
        raise ConfigError(f"train.monitor_every={t.monitor_every} must be at least 0 (1: monitors every step; 0: never "
                          "during training)")
    if t.monitor_fit_steps < 0:
        raise ConfigError(f"train.monitor_fit_steps={t.monitor_fit_steps} must be at least 0 (0: no fitting after "
                          "training)")
    if t.monitor_fit_steps and (not regime.fits_monitors or k < 2 or dist.mode == "pipeline"):
        fitting = " or ".join(name for name, r in REGIMES.items() if r.fits_monitors)
        raise ConfigError(f"train.monitor_fit_steps={t.monitor_fit_steps} fits E2E's monitor decoders after training: "
                          f"it needs train.regime={fitting} with at least 2 stages in one process or data parallel "
                          f"(got regime '{t.regime}', model.partition={m.partition}, dist.mode={dist.mode}); set "
                          "train.monitor_fit_steps=0")
    t.regime_settings = regime_settings(regime, t.regime_settings, m.partition, m.patch)
    # A stage per process needs each stage's input from the previous one alone, every stage training at once.
    pipelinable = [name for name, r in REGIMES.items() if r.plan_for(2).isolated and not r.phased]
    if dist.mode == "pipeline" and t.regime not in pipelinable:
        raise ConfigError(f"dist.mode=pipeline needs train.regime={' or '.join(pipelinable)} (got '{t.regime}'): only "
                          f"there does no gradient cross a stage boundary while every stage trains; use dist.mode=ddp")
    return cfg
