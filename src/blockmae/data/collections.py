"""Adapters for the official annotation files of UCF101, HMDB51, Kinetics and Something-Something v2.

Each reads the files as distributed, turns them into `Entry(path, label)` lists and returns a
`VideoDataset` (listfile.py), so sampling, augmentation and robustness are the same for all.
The `split` argument of `build_dataset` picks the annotation file: "train" the training
list, "val"/"test" the held-out one. Class indices count from 0.

UCF101 (`ucf101:ROOT[,split=1|2|3][,videos=DIR]`)
    annotations: ROOT/ucfTrainTestlist/ or ROOT itself, holding classInd.txt ("1 ApplyEyeMakeup"),
    trainlist0N.txt ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1") and testlist0N.txt
    (paths only: the label comes from the class folder). Videos: DIR/<Class>/<file>.avi,
    DIR defaulting to the first of ROOT/UCF-101, ROOT/videos, ROOT that exists.
HMDB51 (`hmdb51:ROOT[,split=1|2|3][,videos=DIR]`)
    annotations: ROOT/testTrainMulti_7030_splits/ or ROOT, holding <class>_test_split<N>.txt
    ("<file>.avi 1": 1 = train, 2 = test, 0 = unused). Classes in alphabetical order.
    Videos: DIR/<class>/<file>.avi, DIR defaulting to the first of ROOT/hmdb51_org, ROOT/videos, ROOT.
Kinetics-400/600/700 (`kinetics:CSV[,root=DIR]`)
    CSV with a header naming label, youtube_id, time_start, time_end (split and others
    ignored); a row is the file <youtube_id>_<start:06d>_<end:06d>.mp4 in DIR (default: the
    CSV's folder), flat or in per-class folders (<label>/ or <label with _ for spaces>/,
    detected from the first rows). CSV may be a folder: train.csv for "train",
    validate.csv (or val.csv) for "val", test.csv (else validate.csv) for "test". Classes:
    `classes=FILE` (one per line) if given, else the sorted labels of train.csv beside the
    CSV (so every split numbers them alike), else of the CSV itself. A CSV without a label
    column (the K400 test set) is unlabelled.
Something-Something v2 (`ssv2:ROOT[,videos=DIR]`)
    labels.json ({template: "id"}) and train.json / validation.json ([{"id", "template", ...}])
    in ROOT or ROOT/labels, under those names or the official something-something-v2-*.json;
    the label is the template with its brackets removed. "test" reads validation.json (the
    test labels are not public). Videos: DIR/<id>.webm, DIR defaulting to the first of
    ROOT/20bn-something-something-v2, ROOT/videos, ROOT. Defaults: TSN segment sampling, no
    flip (SSv2 labels have a direction: "left to right").

`ext=` (all four) replaces the video extension, e.g. `ext=mp4` for re-encoded copies, or
`ext=` (empty) to drop it, pointing at folders of frames named like the videos.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

from .listfile import Entry, ListFileError, VideoDataset


def _first_existing(candidates: list[Path]) -> Path | None:
    return next((p for p in candidates if p.exists()), None)


def _need(path: Path | None, candidates: list[Path], what: str) -> Path:
    if path is None:
        raise ListFileError(f"{what} not found; looked for {', '.join(str(c) for c in candidates)}")
    return path


def _video_dir(root: Path, videos: str | None, defaults: tuple[str, ...]) -> Path:
    if videos is not None:
        return root / videos  # an absolute `videos` replaces root
    return _first_existing([root / d for d in defaults]) or root


def _with_ext(name: str, ext: str | None) -> str:
    if ext is None:
        return name
    stem = os.path.splitext(name)[0]
    return f"{stem}.{ext.lstrip('.')}" if ext else stem


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ListFileError(f"{path} cannot be read: {e}") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _root(argument: str, name: str) -> Path:
    root = Path(argument)
    if not root.is_dir():
        raise ListFileError(f"{name}: {root} is not a directory (expected the dataset's root folder)")
    return root


# ---------------------------------------------------------------------------- UCF101

def ucf101_entries(root, fold: int = 1, split: str = "train", videos: str | None = None,
                   ext: str | None = None) -> tuple[list[Entry], list[str]]:
    root = _root(str(root), "ucf101")
    ann = root / "ucfTrainTestlist" if (root / "ucfTrainTestlist").is_dir() else root
    class_file = _need(_first_existing([ann / "classInd.txt"]), [ann / "classInd.txt"], "ucf101: classInd.txt")
    classes: list[str] = []
    for number, line in _read_lines(class_file):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
            raise ListFileError(f"{class_file}, line {number}: expected '{len(classes) + 1} ClassName', got {line!r}")
        classes.append(parts[1])
    lookup = {c.lower(): i for i, c in enumerate(classes)}
    kind = "trainlist" if split == "train" else "testlist"
    list_file = ann / f"{kind}{fold:02d}.txt"
    _need(_first_existing([list_file]), [list_file], f"ucf101: split {fold} list")
    video_dir = _video_dir(root, videos, ("UCF-101", "videos"))
    entries = []
    for number, line in _read_lines(list_file):
        parts = line.split()
        folder = parts[0].replace("\\", "/").split("/")[0]
        if len(parts) == 2 and parts[1].isdigit() and 1 <= int(parts[1]) <= len(classes):
            label = int(parts[1]) - 1
        elif len(parts) == 1 and "/" in parts[0] and folder.lower() in lookup:
            label = lookup[folder.lower()]
        else:
            raise ListFileError(f"{list_file}, line {number}: expected 'Class/v_Class_gNN_cNN.avi"
                                f"{' LABEL' if kind == 'trainlist' else ''}' with a class of classInd.txt, got {line!r}")
        entries.append(Entry(str(video_dir / _with_ext(parts[0], ext)), label))
    return entries, classes


# ---------------------------------------------------------------------------- HMDB51

_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<fold>\d)\.txt$")


def hmdb51_entries(root, fold: int = 1, split: str = "train", videos: str | None = None,
                   ext: str | None = None) -> tuple[list[Entry], list[str]]:
    root = _root(str(root), "hmdb51")
    ann = root / "testTrainMulti_7030_splits"
    ann = ann if ann.is_dir() else root
    files = {}
    for name in os.listdir(ann):
        m = _HMDB_FILE.match(name)
        if m and int(m["fold"]) == fold:
            files[m["cls"]] = ann / name
    if not files:
        raise ListFileError(f"hmdb51: no split files <class>_test_split{fold}.txt in {ann}")
    classes = sorted(files)
    want = "1" if split == "train" else "2"
    video_dir = _video_dir(root, videos, ("hmdb51_org", "videos"))
    entries = []
    for label, cls in enumerate(classes):
        for number, line in _read_lines(files[cls]):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ListFileError(f"{files[cls]}, line {number}: expected 'NAME.avi 0|1|2', got {line!r}")
            if parts[1] == want:
                entries.append(Entry(str(video_dir / cls / _with_ext(parts[0], ext)), label))
    return entries, classes


# ---------------------------------------------------------------------------- Kinetics

_KINETICS_FILES = {"train": ("train.csv",), "val": ("validate.csv", "val.csv"),
                   "test": ("test.csv", "validate.csv", "val.csv")}


def _read_kinetics_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in (reader.fieldnames or [])]
            missing = {"youtube_id", "time_start", "time_end"} - set(fields)
            if missing:
                raise ListFileError(f"{path}: the header must name label, youtube_id, time_start, time_end; "
                                    f"missing {', '.join(sorted(missing))} (got {', '.join(fields) or 'nothing'})")
            rows = []
            for number, row in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                try:
                    row["time_start"], row["time_end"] = int(float(row["time_start"])), int(float(row["time_end"]))
                except ValueError:
                    raise ListFileError(f"{path}, line {number}: time_start/time_end must be numbers, got "
                                        f"{row['time_start']!r}, {row['time_end']!r}") from None
                if not row["youtube_id"]:
                    raise ListFileError(f"{path}, line {number}: empty youtube_id")
                row["_line"] = number
                rows.append(row)
    except (OSError, UnicodeDecodeError) as e:
        raise ListFileError(f"{path} cannot be read: {e}") from None
    if not rows:
        raise ListFileError(f"{path} has no rows")
    return rows


def kinetics_entries(csv_path, split: str = "train", root: str | None = None, ext: str | None = "mp4",
                     classes: str | None = None) -> tuple[list[Entry], list[str] | None]:
    path = Path(csv_path)
    if path.is_dir():
        candidates = [path / n for n in _KINETICS_FILES.get(split, _KINETICS_FILES["test"])]
        path = _need(_first_existing(candidates), candidates, f"kinetics: the {split} CSV")
    elif not path.is_file():
        raise ListFileError(f"kinetics: CSV {path} does not exist")
    rows = _read_kinetics_csv(path)
    labelled = all(r.get("label") for r in rows)
    class_names = None
    if labelled:
        if classes is not None:
            class_names = [n for _, n in _read_lines(Path(classes))]
        else:
            train_csv = path.parent / "train.csv"
            source = _read_kinetics_csv(train_csv) if train_csv.is_file() and train_csv != path else rows
            class_names = sorted({r["label"] for r in source if r.get("label")})
        lookup = {c: i for i, c in enumerate(class_names)}
        for r in rows:
            if r["label"] not in lookup:
                raise ListFileError(f"{path}, line {r['_line']}: label {r['label']!r} is not one of the "
                                    f"{len(class_names)} classes")
    video_dir = Path(root) if root is not None else path.parent
    names = [_with_ext(f"{r['youtube_id']}_{r['time_start']:06d}_{r['time_end']:06d}.mp4", ext) for r in rows]

    def layout(r, name):
        return [video_dir / name] + ([video_dir / r["label"] / name, video_dir / r["label"].replace(" ", "_") / name]
                                     if labelled else [])

    # the folder layout (flat or per class) is the one the first rows are found in
    hits = [0, 0, 0]
    for r, name in list(zip(rows, names))[:20]:
        for k, candidate in enumerate(layout(r, name)):
            hits[k] += candidate.exists()
    best = max(range(len(hits)), key=lambda k: (hits[k], -k))
    entries = [Entry(str(layout(r, name)[best]), lookup[r["label"]] if labelled else None)
               for r, name in zip(rows, names)]
    return entries, class_names


# ---------------------------------------------------------------------------- Something-Something v2

_SSV2_FILES = {"labels": ("labels.json", "something-something-v2-labels.json"),
               "train": ("train.json", "something-something-v2-train.json"),
               "val": ("validation.json", "something-something-v2-validation.json")}


def _load_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ListFileError(f"{path} cannot be read as JSON: {e}") from None


def ssv2_entries(root, split: str = "train", videos: str | None = None,
                 ext: str | None = "webm") -> tuple[list[Entry], list[str]]:
    root = _root(str(root), "ssv2")

    def find(kind):
        candidates = [d / n for d in (root, root / "labels") for n in _SSV2_FILES[kind]]
        return _need(_first_existing(candidates), candidates, f"ssv2: the {kind} file")

    labels_file = find("labels")
    table = _load_json(labels_file)
    if not isinstance(table, dict) or not all(str(v).isdigit() for v in table.values()):
        raise ListFileError(f"{labels_file}: expected {{template: \"id\"}}")
    ids = {name: int(i) for name, i in table.items()}
    class_names = [""] * len(ids)
    for name, i in ids.items():
        if not 0 <= i < len(ids) or class_names[i]:
            raise ListFileError(f"{labels_file}: class ids must be 0..{len(ids) - 1}, each once")
        class_names[i] = name
    ann = find("train" if split == "train" else "val")
    items = _load_json(ann)
    if not isinstance(items, list):
        raise ListFileError(f"{ann}: expected a list of {{\"id\", \"template\", ...}}")
    video_dir = _video_dir(root, videos, ("20bn-something-something-v2", "videos"))
    entries = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item or "template" not in item:
            raise ListFileError(f"{ann}, item {k}: expected an object with 'id' and 'template', got {item!r}"[:300])
        template = item["template"].replace("[", "").replace("]", "")
        if template not in ids:
            raise ListFileError(f"{ann}, item {k} (id {item['id']}): template {template!r} is not in {labels_file}")
        entries.append(Entry(str(video_dir / _with_ext(f"{item['id']}.webm", ext)), ids[template]))
    return entries, class_names


# ---------------------------------------------------------------------------- spec factories

def ucf101_dataset(split: str = "train", *, argument: str, fold: int = 1, videos: str | None = None,
                   ext: str | None = None, **options) -> VideoDataset:
    entries, classes = ucf101_entries(argument, fold, split, videos, ext)
    return VideoDataset(entries, split, name=f"ucf101:{argument}", class_names=classes, **options)


def hmdb51_dataset(split: str = "train", *, argument: str, fold: int = 1, videos: str | None = None,
                   ext: str | None = None, **options) -> VideoDataset:
    entries, classes = hmdb51_entries(argument, fold, split, videos, ext)
    return VideoDataset(entries, split, name=f"hmdb51:{argument}", class_names=classes, **options)


def kinetics_dataset(split: str = "train", *, argument: str, root: str | None = None, ext: str | None = "mp4",
                     classes: str | None = None, **options) -> VideoDataset:
    entries, class_names = kinetics_entries(argument, split, root, ext, classes)
    return VideoDataset(entries, split, name=f"kinetics:{argument}", class_names=class_names, **options)


def ssv2_dataset(split: str = "train", *, argument: str, videos: str | None = None, ext: str | None = "webm",
                 **options) -> VideoDataset:
    entries, classes = ssv2_entries(argument, split, videos, ext)
    return VideoDataset(entries, split, name=f"ssv2:{argument}", class_names=classes, **options)
