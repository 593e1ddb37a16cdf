"""Typed configuration: dataclasses, YAML load/save, dotted overrides, validation.

A config is plain values. `load_config(path, overrides)` gives a fully resolved `Config`
(presets expanded, every default written out) that `save_config` writes back verbatim,
so `RUN_DIR/config.yaml` alone rebuilds a run.
"""

from ..errors import ConfigError
from .files import CONFIG_DIR, builtin_configs, config_path, diff_configs, load_config, save_config
from .parse import apply_overrides, config_from_dict, to_dict
from .schema import (IMAGENET_MEAN, IMAGENET_STD, PRESETS, RESUMABLE_KEYS, Config, DataConfig, DecoderConfig,
                     DistConfig, MaskConfig, ModelConfig, TrainConfig)
from .validate import partition_layers, per_stage, resolve

__all__ = ["ConfigError", "CONFIG_DIR", "builtin_configs", "config_path", "diff_configs", "load_config", "save_config",
           "apply_overrides", "config_from_dict", "to_dict", "IMAGENET_MEAN", "IMAGENET_STD", "PRESETS",
           "RESUMABLE_KEYS", "Config", "DataConfig", "DecoderConfig", "DistConfig", "MaskConfig", "ModelConfig",
           "TrainConfig", "partition_layers", "per_stage", "resolve"]
