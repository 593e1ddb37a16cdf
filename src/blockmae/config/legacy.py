"""Configs written before `train.regime_settings` (run directories' config.yaml, older study files and
overrides): each regime setting was a key of its own under `train`. They are read as the new key."""

from __future__ import annotations

from ..errors import ConfigError
from ..regimes import SETTINGS_KEY

MOVED = ("phase_split", "overlap", "interface_noise", "finetune_steps", "frozen_stages", "target_pool")


def new_key(key: str) -> str:
    """A dotted key as it is now: train.overlap -> train.regime_settings.overlap; others unchanged."""
    section, _, name = key.partition(".")
    return f"{SETTINGS_KEY}.{name}" if section == "train" and name in MOVED else key


def upgrade(data: dict) -> dict:
    """Moves train.<setting> into train.regime_settings in `data` (a nested dict; its `train` mapping is replaced,
    not changed) and returns it."""
    train = data.get("train") if isinstance(data, dict) else None
    if not isinstance(train, dict) or not any(name in train for name in MOVED):
        return data
    train = dict(train)
    moved = {name: train.pop(name) for name in MOVED if name in train}
    given = train.get("regime_settings") or {}
    if not isinstance(given, dict):
        raise ConfigError(f"{SETTINGS_KEY}: expected a mapping of the regime's settings, got {given!r}")
    for name in moved.keys() & given.keys():
        if moved[name] != given[name]:
            raise ConfigError(f"train.{name}={moved[name]} and {SETTINGS_KEY}.{name}={given[name]} are both set; "
                              f"keep only {SETTINGS_KEY}.{name}")
    train["regime_settings"] = {**moved, **given}
    data["train"] = train
    return data
