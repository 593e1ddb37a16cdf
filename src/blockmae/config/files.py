"""Config files: the built-in configs, YAML reading (refusing duplicate keys) and writing, and diffs."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import ConfigError
from .parse import apply_overrides, config_from_dict, to_dict
from .schema import Config

CONFIG_DIR = Path(__file__).parent.parent / "configs"


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
