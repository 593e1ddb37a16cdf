"""Plain data <-> `Config`: type checking and coercion of each value, unknown keys with a suggestion,
and `key=value` overrides."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing

import yaml

from ..errors import ConfigError
from .schema import Config
from .validate import resolve

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
