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
from typing import Any, Callable

from torch.utils.data import Dataset

from .digits import DEFAULT_N, SPLITS, MovingDigits
from .gratings import DEFAULT_FPS, DriftingGratings, TwoRegionGratings
from .hierarchy import DEFAULT_N as HIERARCHY_N
from .hierarchy import HierarchyVideos
from .scenes import COUNTS, TexturedScenes
from .registry import (COMMON_OPTIONS, REGISTRY, DatasetInfo, Option, flag, one_of, positive_float, positive_int,
                       register_dataset)
from .scenes import DEFAULT_N as SCENES_N


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
    if name in REGISTRY and not REGISTRY[name].takes_argument:
        return REGISTRY[name], None
    head, colon, argument = name.partition(":")
    info = REGISTRY.get(head)
    if info is not None and info.takes_argument:
        if not colon or not argument:
            raise ValueError(f"dataset {head!r} needs an argument: {info.example or head + ':ARG'}")
        return info, argument
    if info is not None and colon:
        raise ValueError(f"dataset {head!r} takes no ':' argument; got {name!r}")
    valid = [i.name + (":..." if i.takes_argument else "") for i in REGISTRY.values()]
    raise ValueError(f"unknown dataset {name!r}{_suggest(head, REGISTRY)} Valid datasets: {', '.join(valid)}")


def check_spec(spec: str) -> None:
    """Raise the error `build_dataset` would give for a bad name or option, without building anything."""
    _parse_options(spec)


def _parse_options(spec: str) -> tuple[DatasetInfo, str | None, dict[str, Any]]:
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
    return info, argument, values


def spec_splits(spec: str) -> tuple[str, ...] | None:
    """The splits this spec's data really has, as separate clips: None for one set (every split, if accepted, reads
    the same clips), or the splits with the first one being what a single set is read as."""
    info, _, values = _parse_options(spec)
    return info.instance_splits(values) if info.instance_splits is not None else info.splits


def build_dataset(spec: str, split: str = "train", *, frames: int, image_size: int, channels: int = 3,
                  seed: int = 0) -> Dataset:
    """Build a dataset from a spec; `frames`/`image_size`/`channels` are the model's, `frames=`/`size=` override."""
    info, argument, values = _parse_options(spec)
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
    for info in REGISTRY.values():
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
        "n": Option(positive_int, "a positive integer", None,
                    f"clips in the split (default: {DEFAULT_N['train']} train, {DEFAULT_N['test']} test)"),
        "digits": Option(one_of(1, 2), "1 or 2", 1, "moving digits per clip; the 2nd is a distractor"),
    },
    example="digits,n=512,digits=2",
    splits=SPLITS,
))
register_dataset(DatasetInfo(
    name="scenes",
    factory=TexturedScenes,
    description="a camera panning over a 1/f texture with 1-3 moving, occluding shapes (the CPU pretraining set)",
    targets=list(TexturedScenes.target_names),
    options={
        "n": Option(positive_int, "a positive integer", None,
                    f"clips in the split (default: {SCENES_N['train']} train, {SCENES_N['test']} test)"),
        "shapes": Option(one_of(*COUNTS), "1, 2 or 3", None, "shapes per clip (default: 1 to 3 at random)"),
    },
    example="scenes,n=1024",
    splits=SPLITS,
))

register_dataset(DatasetInfo(
    name="hierarchy",
    factory=HierarchyVideos,
    description="a random hierarchy of latent symbols drawn as drifting-grating cells: a hidden cell needs its "
                "ancestors inferred from the visible ones",
    targets=["root", "level2", "level1", "leaf"],
    options={
        "n": Option(positive_int, "a positive integer", None,
                    f"clips in the split (default: {HIERARCHY_N['train']} train, {HIERARCHY_N['test']} test)"),
        "symbols": Option(positive_int, "a positive integer", 8, "latent symbols per level (and leaf primitives)"),
        "rules": Option(positive_int, "a positive integer", 2, "synonymous 2x2 productions per symbol"),
        "grammar": Option(int, "an integer", 0, "the seed of the grammar (the same in both splits)"),
        "balanced": Option(flag, "0 or 1", False,
                           "1: every symbol's productions show each child symbol once at each position (rules= must "
                           "equal symbols=), so no single cell says anything about its ancestors; only combinations do"),
    },
    example="hierarchy,n=1024,rules=3",
    splits=SPLITS,
))

def _gratings_options() -> dict[str, Option]:
    return {
        "n": Option(positive_int, "a positive integer", None, "a seeded random subset of n clips (default: all)"),
        "fps": Option(positive_float, "a positive number", DEFAULT_FPS, "frame rate in frames per second"),
    }


register_dataset(DatasetInfo(
    name="gratings",
    factory=DriftingGratings,
    description="drifting sine gratings, full factorial of 5 factors (10,800 clips); one set, split ignored",
    targets=list(DriftingGratings.target_names),
    options=_gratings_options(),
    example="gratings,n=600",
))
register_dataset(DatasetInfo(
    name="gratings2",
    factory=TwoRegionGratings,
    description="two-region gratings, left/right halves differ (15,552 clips), relational targets; one set, split ignored",
    targets=list(TwoRegionGratings.target_names),
    options=_gratings_options(),
    example="gratings2,n=600",
))


# ----------------------------------------------------------------------------- real video collections
# The factories live in listfile.py / collections.py; the options (and their defaults, the single
# source of truth) are declared here.

from .collections import hmdb51_dataset, kinetics_dataset, ssv2_dataset, ucf101_dataset  # noqa: E402
from .listfile import list_dataset  # noqa: E402
from .video import BACKENDS, DEFAULT_PATTERN  # noqa: E402


def _text(text: str) -> str:
    if not text:
        raise ValueError
    return text


def _any_text(text: str) -> str:
    return text


def _word(*choices: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError
        return text
    return convert


def _pattern(text: str) -> str:
    try:
        if text.format(1) == text:
            raise ValueError
    except (IndexError, KeyError, ValueError):
        raise ValueError from None
    return text


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError
    return value


def video_options(**defaults) -> dict[str, Option]:
    """Options shared by every video collection (`defaults` overrides some defaults, e.g. for SSv2)."""
    d = dict(n=None, rate=4, sampling="rate", clips=1, crops=1, flip=True, crop="multiscale", short_side=None,
             backend="pyav", threads=1, min_frames=1, pattern=DEFAULT_PATTERN, start=1)
    d.update(defaults)
    return {
        "n": Option(positive_int, "a positive integer", d["n"],
                    "a deterministic subset of n videos per split, stratified by label (default: all)"),
        "rate": Option(positive_int, "a positive integer", d["rate"], "frame stride of sampling=rate"),
        "sampling": Option(_word("rate", "segment"), "rate or segment", d["sampling"],
                           "rate: VideoMAE (frames `rate` apart, random start); segment: TSN (one frame per segment)"),
        "clips": Option(positive_int, "a positive integer", d["clips"],
                        "clips per decoded video: repeated sampling in training, uniform views in evaluation"),
        "crops": Option(one_of(1, 3), "1 or 3", d["crops"], "evaluation crops: centre (1) or three along the long side"),
        "flip": Option(flag, "0 or 1", d["flip"], "random horizontal flip in training"),
        "crop": Option(_word("multiscale", "resized"), "multiscale or resized", d["crop"],
                       "training crop: VideoMAE multi-scale crop or random resized crop"),
        "short_side": Option(positive_int, "a positive integer", d["short_side"],
                             "evaluation: shorter side resized to this before cropping (default: the image size)"),
        "backend": Option(_word(*BACKENDS), " or ".join(BACKENDS), d["backend"], "video decoder"),
        "threads": Option(_nonnegative_int, "a non-negative integer", d["threads"],
                          "decoder threads per video (0: FFmpeg's choice)"),
        "min_frames": Option(positive_int, "a positive integer", d["min_frames"],
                             "videos with fewer frames are skipped as too short"),
        "pattern": Option(_pattern, "a file name with one {} field, e.g. img_{:05d}.jpg", d["pattern"],
                          "frame file names in frame folders"),
        "start": Option(_nonnegative_int, "a non-negative integer", d["start"], "number of the first frame file"),
    }


def _factory(function, options: dict[str, Option], rename: dict[str, str] | None = None):
    """Call `function` with every option's default filled in (and spec keys renamed, e.g. split -> fold)."""
    rename = rename or {}

    def factory(split, /, **kwargs):  # positional-only: a `split=` option may be in kwargs
        values = {k: o.default for k, o in options.items()}
        values.update(kwargs)
        return function(split, **{rename.get(k, k): v for k, v in values.items()})
    factory.__name__ = function.__name__
    return factory


VIDEO_SPLITS = ("train", "val", "test")


def _register_video(name: str, function, description: str, options: dict[str, Option], example: str,
                    rename: dict[str, str] | None = None, instance_splits=None) -> None:
    register_dataset(DatasetInfo(name=name, factory=_factory(function, options, rename), description=description,
                                 targets=["label"], options=options, example=example, splits=VIDEO_SPLITS,
                                 takes_argument=True, instance_splits=instance_splits))


def _list_splits(values: dict[str, Any]) -> tuple[str, ...] | None:
    """A list with a held-out list (`test=`/`val=`) has train and test data; a list alone is one set, read
    through its deterministic evaluation pass ("test"), never the random crops of "train"."""
    return VIDEO_SPLITS if values.get("test") or values.get("val") else ("test",)


_FOLD = Option(one_of(1, 2, 3), "1, 2 or 3", 1, "official train/test split")
_EXT = Option(_any_text, "an extension, or empty for frame folders", None,
              "replace the video extension (empty: folders of frames named like the videos)")

_register_video(
    "list", list_dataset,
    "your own videos: a text file of 'PATH LABEL' lines (VideoMAE style; video files or frame folders)",
    {"root": Option(_text, "a folder", None, "prefix of relative paths (default: the list file's folder)"),
     "labels": Option(flag, "0 or 1", True, "0: lines are bare paths (unlabelled pretraining)"),
     "test": Option(_text, "a list file", None, "held-out list read as the test split, relative like the main list "
                    "(without test= or val=, the list is one set: the analysis cross-validates over its videos)"),
     "val": Option(_text, "a list file", None, "held-out list read as the val split (and as test without test=)"),
     **video_options()},
    "list:/data/train.txt,test=test.txt,root=/data/videos,rate=4", instance_splits=_list_splits)
_register_video(
    "ucf101", ucf101_dataset,
    "UCF101 from its official split files (classInd.txt, trainlist0N.txt, testlist0N.txt); 101 classes",
    {"split": _FOLD, "videos": Option(_text, "a folder", None, "video folder (default: ROOT/UCF-101, ROOT/videos or ROOT)"),
     "ext": _EXT, **video_options()},
    "ucf101:/data/ucf101,split=1", rename={"split": "fold"})
_register_video(
    "hmdb51", hmdb51_dataset,
    "HMDB51 from its official split files (<class>_test_split<N>.txt); 51 classes",
    {"split": _FOLD, "videos": Option(_text, "a folder", None,
                                      "video folder (default: ROOT/hmdb51_org, ROOT/videos or ROOT)"),
     "ext": _EXT, **video_options()},
    "hmdb51:/data/hmdb51,split=1", rename={"split": "fold"})
_register_video(
    "kinetics", kinetics_dataset,
    "Kinetics-400/600/700 from the official CSV (label,youtube_id,time_start,time_end,split) or a folder of them",
    {"root": Option(_text, "a folder", None, "video folder (default: the CSV's folder)"),
     "ext": Option(_any_text, "an extension, or empty for frame folders", "mp4", "video file extension"),
     "classes": Option(_text, "a file", None, "class names, one per line (default: sorted labels of train.csv)"),
     **video_options()},
    "kinetics:/data/k400/train.csv,root=/data/k400/train")
_register_video(
    "ssv2", ssv2_dataset,
    "Something-Something v2 from labels.json + train.json/validation.json; 174 classes; TSN sampling, no flip",
    {"videos": Option(_text, "a folder", None,
                      "video folder (default: ROOT/20bn-something-something-v2, ROOT/videos or ROOT)"),
     "ext": Option(_any_text, "an extension, or empty for frame folders", "webm", "video file extension"),
     **video_options(sampling="segment", flip=False)},
    "ssv2:/data/ssv2")
