"""Dataset spec strings: one short text names a dataset and its options, in configs and on the CLI.

A spec is `name[,key=value...]`, e.g. `digits,n=100,digits=2`. The name is everything before
the first comma, so names may hold colons, slashes and spaces (`list:/a b/c.txt,root=/x`).
A registered name may take an argument after a colon (`NAME:ARG`); the registry passes it
to the factory as `argument=`.

Every dataset also accepts `frames=` and `size=`, which override the model's frames and
image size for that dataset only (e.g. `digits,size=32`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from torch.utils.data import Dataset

from .digits import DEFAULT_N, SPLITS, MovingDigits
from .gratings import DEFAULT_FPS, DriftingGratings, TwoRegionGratings


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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError
    return value


def _one_of(*choices: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        value = int(text)
        if value not in choices:
            raise ValueError
        return value
    return convert


COMMON_OPTIONS = {
    "frames": Option(_positive_int, "a positive integer", None, "frames per clip (default: the model's)"),
    "size": Option(_positive_int, "a positive integer", None, "frame height and width in pixels (default: the model's)"),
}

_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> None:
    """Add a dataset to the spec registry (built-ins below; adapters add themselves the same way)."""
    clash = set(info.options) & set(COMMON_OPTIONS)
    if clash:
        raise ValueError(f"dataset {info.name!r}: options {sorted(clash)} are reserved for every dataset")
    _REGISTRY[info.name] = info


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split `name[,key=value...]` into the name and raw text options (types come later, per dataset)."""
    if not isinstance(spec, str):
        raise ValueError(f"dataset spec must be a string like 'digits,n=100', got {spec!r}")
    name, *parts = spec.strip().split(",")
    name = name.strip()
    if not name:
        raise ValueError(f"dataset spec {spec!r} has no dataset name; expected 'name[,key=value...]'")
    options: dict[str, str] = {}
    for part in parts:
        if not part.strip():
            continue  # tolerate 'digits,' and 'digits,,n=3'
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise ValueError(f"dataset spec {spec!r}: option {part.strip()!r} is not of the form key=value")
        if key in options:
            raise ValueError(f"dataset spec {spec!r}: option {key!r} given twice")
        options[key] = value
    return name, options


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else "."


def _lookup(name: str) -> tuple[DatasetInfo, str | None]:
    if name in _REGISTRY and not _REGISTRY[name].takes_argument:
        return _REGISTRY[name], None
    head, colon, argument = name.partition(":")
    info = _REGISTRY.get(head)
    if info is not None and info.takes_argument:
        if not colon or not argument:
            raise ValueError(f"dataset {head!r} needs an argument: {info.example or head + ':ARG'}")
        return info, argument
    if info is not None and colon:
        raise ValueError(f"dataset {head!r} takes no ':' argument; got {name!r}")
    valid = [i.name + (":..." if i.takes_argument else "") for i in _REGISTRY.values()]
    raise ValueError(f"unknown dataset {name!r}{_suggest(head, _REGISTRY)} Valid datasets: {', '.join(valid)}")


def build_dataset(spec: str, split: str = "train", *, frames: int, image_size: int, channels: int = 3,
                  seed: int = 0) -> Dataset:
    """Build a dataset from a spec; `frames`/`image_size`/`channels` are the model's, `frames=`/`size=` override."""
    name, raw = parse_spec(spec)
    info, argument = _lookup(name)
    valid = {**info.options, **COMMON_OPTIONS}
    values: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in valid:
            raise ValueError(f"dataset {info.name!r} has no option {key!r}{_suggest(key, valid)} "
                             f"Valid options: {', '.join(valid)}")
        try:
            values[key] = valid[key].convert(text)
        except ValueError:
            raise ValueError(f"dataset {info.name!r}: option {key}={text!r} is not valid; "
                             f"expected {valid[key].expected}") from None
    if info.splits is not None and split not in info.splits:
        raise ValueError(f"dataset {info.name!r} has no split {split!r}{_suggest(str(split), info.splits)} "
                         f"Valid splits: {', '.join(info.splits)}")
    frames = values.pop("frames", frames)
    image_size = values.pop("size", image_size)
    kwargs = dict(frames=frames, image_size=image_size, channels=channels, seed=seed, **values)
    if argument is not None:
        kwargs["argument"] = argument
    return info.factory(split, **kwargs)


def available_datasets() -> list[dict]:
    """What `blockmae datasets` prints: name, description, targets, options with defaults, an example."""
    out = []
    for info in _REGISTRY.values():
        options = {**info.options, **COMMON_OPTIONS}
        out.append(dict(
            name=info.name + (":ARG" if info.takes_argument else ""),
            description=info.description,
            targets=list(info.targets),
            options={k: dict(default=o.default, expected=o.expected, help=o.help) for k, o in options.items()},
            splits=list(info.splits) if info.splits is not None else None,
            example=info.example,
        ))
    return out


register_dataset(DatasetInfo(
    name="digits",
    factory=MovingDigits,
    description="moving handwritten digits (scikit-learn's 8x8 set), straight-line motion on black",
    targets=list(MovingDigits.target_names),
    options={
        "n": Option(_positive_int, "a positive integer", None,
                    f"clips in the split (default: {DEFAULT_N['train']} train, {DEFAULT_N['test']} test)"),
        "digits": Option(_one_of(1, 2), "1 or 2", 1, "moving digits per clip; the 2nd is a distractor"),
    },
    example="digits,n=512,digits=2",
    splits=SPLITS,
))
register_dataset(DatasetInfo(
    name="gratings",
    factory=DriftingGratings,
    description="drifting sine gratings, full factorial of 5 factors (10,800 clips); one set, split ignored",
    targets=list(DriftingGratings.target_names),
    options={
        "n": Option(_positive_int, "a positive integer", None, "a seeded random subset of n clips (default: all)"),
        "fps": Option(_positive_float, "a positive number", DEFAULT_FPS, "frame rate in frames per second"),
    },
    example="gratings,n=600",
))
register_dataset(DatasetInfo(
    name="gratings2",
    factory=TwoRegionGratings,
    description="two-region gratings, left/right halves differ (15,552 clips), relational targets; one set, split ignored",
    targets=list(TwoRegionGratings.target_names),
    options={
        "n": Option(_positive_int, "a positive integer", None, "a seeded random subset of n clips (default: all)"),
        "fps": Option(_positive_float, "a positive number", DEFAULT_FPS, "frame rate in frames per second"),
    },
    example="gratings2,n=600",
))
