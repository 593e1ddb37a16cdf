"""Plain data <-> `Config`: type checking and coercion of each value, unknown keys with a suggestion,
and `key=value` overrides."""

from __future__ import annotations

import dataclasses
import difflib
import typing

import yaml

from ..errors import ConfigError
from ..regimes import SETTINGS_KEY, setting_names
from .legacy import new_key, upgrade
from .schema import Config
from .types import coerce
from .validate import resolve


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
    valid = _all_keys(Config) + sorted(f"{SETTINGS_KEY}.{name}" for name in setting_names())
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not close:  # also try matching the last component alone ("lr" -> "train.lr")
        tail = {k.rsplit(".", 1)[-1]: k for k in valid}
        hit = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(tail), n=1, cutoff=0.6)
        close = [tail[hit[0]]] if hit else []
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
    return ConfigError(f"unknown config key '{key}'{hint}")


def _is_open(tp) -> bool:
    """A mapping whose keys the schema does not fix (`train.regime_settings`: they depend on the regime)."""
    return typing.get_origin(tp) is dict


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
        elif _is_open(tp):  # its keys are checked in `resolve` (the regime's settings)
            if not isinstance(value, dict) and value is not None and not dataclasses.is_dataclass(value):
                raise ConfigError(f"{prefix}{name}: expected a mapping, got {value!r}")
            kwargs[name] = dict(value or {}) if isinstance(value, dict) or value is None else value
        else:
            kwargs[name] = coerce(value, tp, prefix + name)
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict) -> Config:
    """Build and validate a Config from a (possibly partial) nested dict."""
    cfg = _from_dict(Config, upgrade(dict(data or {})))
    resolve(cfg)
    return cfg


# ----------------------------------------------------------------------------- overrides

def _set_dotted(data: dict, key: str, value) -> None:
    key = new_key(key)
    parts = key.split(".")
    node, cls = data, Config
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls)
        if part not in hints:
            raise _unknown_key(key)
        tp = hints[part]
        if _is_open(tp) and i == len(parts) - 2:  # a key of the mapping: checked in `resolve`
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node[part][parts[-1]] = value
            return
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
    """Apply `key=value` strings (value parsed as YAML: 4, 1e-3, [3,3,3,3], null, true) to `data`, first read as
    a current config (`legacy.upgrade`), so that an override of a setting wins over the file's old key."""
    upgrade(data)
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
