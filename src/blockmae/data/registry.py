"""The dataset registry: what a spec name maps to (its factory, options, splits), and the option types.

`spec.py` parses spec strings against it and registers the built-in datasets; adapters add themselves with
`register_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch.utils.data import Dataset


@dataclass(frozen=True)
class Option:
    """A typed option: `convert` turns the text into a value or raises ValueError."""

    convert: Callable[[str], Any]
    expected: str  # what a valid value looks like, for the error message
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    factory: Callable[..., Dataset]
    description: str
    targets: list[str]
    options: dict[str, Option] = field(default_factory=dict)
    example: str = ""
    splits: tuple[str, ...] | None = None  # None: any split is accepted (single-set data)
    takes_argument: bool = False  # spec name is `NAME:ARG`
    # the splits one spec's options give it, when they differ from `splits` (e.g. `list:` without `test=`: one set)
    instance_splits: Callable[[dict[str, Any]], tuple[str, ...] | None] | None = None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError
    return value


def one_of(*choices: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        value = int(text)
        if value not in choices:
            raise ValueError
        return value
    return convert


def flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError


COMMON_OPTIONS = {
    "frames": Option(positive_int, "a positive integer", None, "frames per clip (default: the model's)"),
    "size": Option(positive_int, "a positive integer", None, "frame height and width in pixels (default: the model's)"),
}

REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> None:
    """Add a dataset to the spec registry (built-ins below; adapters add themselves the same way)."""
    clash = set(info.options) & set(COMMON_OPTIONS)
    if clash:
        raise ValueError(f"dataset {info.name!r}: options {sorted(clash)} are reserved for every dataset")
    REGISTRY[info.name] = info
