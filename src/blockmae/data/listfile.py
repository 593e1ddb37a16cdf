"""Video collections as lists of (path, label): the `list:` spec and the dataset every adapter builds.

A list file has one sample per line, VideoMAE style:

    videos/abseiling/a b c.mp4 0      # PATH LABEL; split at the last whitespace, so paths may hold spaces
    frames/v_ApplyEyeMakeup_g01_c01 0 # a folder of frames (img_00001.jpg, ...)

Blank lines and lines starting with `#` are skipped. Relative paths are joined to `root` if
given, else to the list file's own folder. With `labels=False` each line is a bare path
(unlabelled pretraining: labels have shape (0,)). A line that does not parse is an error
naming the file and the line number, raised when the dataset is built.

`VideoDataset` turns entries into clips: open (video file or frame folder), pick frame
indices (`sampling.py`), decode only those, augment (`augment.py`). The split decides the
mode: "train" draws random clips and crops from `default_rng([seed, epoch, index])`, so a
sample is the same in any worker and any order, and differs between epochs once the
training loop calls `set_epoch(epoch)`; any other split is deterministic (uniform views,
centre or three crops).

`list:TRAIN.txt,test=TEST.txt` (and/or `val=VAL.txt`) names a separate held-out list: "train" reads the
main list, "test" the test list (else the val list), "val" the val list (else the test list). Without one,
every split reads the main list: it is one set, and the analysis cross-validates over its videos.

`n=N` (every video spec) keeps a deterministic subset of N entries, stratified by label (`stratified_subset`).
Clips of one source video share a group (`entry_groups`: UCF101-style names `v_Class_gNN_cMM` give group
`gNN`), which the analysis's cross-validation keeps on one side of each fold.

Items are `(clip, labels)`: clip uint8 (T, H, W, C), or (R, T, H, W, C) when `clips=R` > 1
(one decode, R clips: R random clips in training, MAE-ST style repeated sampling, each with
its own temporal position and crop; R uniform temporal views x `crops` spatial crops in
evaluation, view-major). labels int64 (1,) = the class index, or (0,) when unlabelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .augment import CROPS, eval_clips, to_channels, train_clip
from .sampling import clip_indices
from .video import DEFAULT_PATTERN, VideoDecodeError, check_backend, open_video

SPLITS = ("train", "val", "test")
SUBSET_SEED = 0  # `n=` subsets do not depend on the run's seed: the same n gives the same clips everywhere
# UCF101's clip names: clips of one group (gNN) are cut from the same long video or share actor and scene
_UCF_GROUP = re.compile(r"v_.+_(g\d+)_c\d+")


class ListFileError(ValueError):
    """An annotation or list file that cannot be read; the message names the file (and line)."""


@dataclass(frozen=True)
class Entry:
    path: str
    label: int | None = None


def read_list(path, *, root=None, labels: bool = True) -> list[Entry]:
    """Parse a VideoMAE-style list file into entries with resolved paths (see module doc)."""
    list_path = Path(path)
    if not list_path.is_file():
        raise ListFileError(f"list file {list_path} does not exist")
    base = Path(root) if root is not None else list_path.parent
    try:
        text = list_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ListFileError(f"list file {list_path} cannot be read: {e}") from None
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not labels:
            entries.append(Entry(str(base / line)))
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].isdigit():
            raise ListFileError(f"{list_path}, line {number}: expected 'PATH LABEL' with a non-negative integer "
                                f"label, got {raw.strip()!r} (use labels=0 for a list of bare paths)")
        entries.append(Entry(str(base / parts[0]), int(parts[1])))
    if not entries:
        raise ListFileError(f"list file {list_path} has no entries")
    return entries


def stratified_subset(entries: Sequence[Entry], n: int, seed: int = SUBSET_SEED) -> list[Entry]:
    """A deterministic subset of `n` entries (all when n >= len), in list order, each label kept in proportion.

    Entries are shuffled by `seed`; the k-th of c entries of a label is placed at (k + 0.5) / c, and the n lowest
    places are kept, so every label gets its share (rounded) whatever n is."""
    entries = list(entries)
    if n >= len(entries):
        return entries
    order = np.random.default_rng(seed).permutation(len(entries))
    labels = [entries[i].label for i in order]
    counts: dict = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    seen: dict = {}
    places = []
    for label in labels:
        places.append((seen.get(label, 0) + 0.5) / counts[label])
        seen[label] = seen.get(label, 0) + 1
    kept = order[np.argsort(places, kind="stable")[:n]]
    return [entries[i] for i in sorted(kept)]


def entry_groups(entries: Sequence[Entry]) -> list[str] | None:
    """The source-video group of each entry: `gNN` for UCF101-style names (`v_Class_gNN_cMM`), else the entry's
    own path. None when no name gives a group (every entry is then its own video)."""
    matches = [_UCF_GROUP.fullmatch(Path(e.path).stem) for e in entries]
    if not any(matches):
        return None
    return [m.group(1) if m else e.path for m, e in zip(matches, entries)]


class VideoDataset(Dataset):
    """Clips from a list of entries (video files or frame folders); see the module doc for the item format."""

    def __init__(self, entries: Sequence[Entry], split: str = "train", *, frames: int, image_size: int,
                 channels: int = 3, seed: int = 0, name: str = "video", class_names: list[str] | None = None,
                 rate: int = 4, sampling: str = "rate", clips: int = 1, crops: int = 1, flip: bool = True,
                 crop: str = "multiscale", short_side: int | None = None, backend: str = "pyav", threads: int = 1,
                 pattern: str = DEFAULT_PATTERN, start: int = 1, min_frames: int = 1, n: int | None = None):
        entries = list(entries) if n is None else stratified_subset(entries, n)
        if not entries:
            raise ValueError(f"{name}: no samples")
        for key, value in (("frames", frames), ("image_size", image_size), ("rate", rate), ("clips", clips),
                           ("min_frames", min_frames)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {key}={value!r}, expected a positive integer")
        if channels not in (1, 3):
            raise ValueError(f"{name}: channels={channels!r}, expected 1 (gray) or 3 (RGB)")
        if sampling not in ("rate", "segment"):
            raise ValueError(f"{name}: sampling={sampling!r}, expected 'rate' or 'segment'")
        if crop not in CROPS:
            raise ValueError(f"{name}: crop={crop!r}, expected one of {', '.join(CROPS)}")
        if crops not in (1, 3):
            raise ValueError(f"{name}: crops={crops!r}, expected 1 or 3")
        if short_side is not None and short_side < image_size:
            raise ValueError(f"{name}: short_side={short_side} is smaller than the image size {image_size}")
        check_backend(backend)
        labelled = [e.label is not None for e in entries]
        if any(labelled) and not all(labelled):
            raise ValueError(f"{name}: some samples have labels and some do not")
        self.labelled = all(labelled)
        if self.labelled:
            top = max(e.label for e in entries)
            class_names = [str(i) for i in range(top + 1)] if class_names is None else list(class_names)
            if top >= len(class_names) or min(e.label for e in entries) < 0:
                raise ValueError(f"{name}: labels run from {min(e.label for e in entries)} to {top}, "
                                 f"but there are {len(class_names)} classes")
            self.target_names = ["label"]
            self.class_names = {"label": class_names}
        else:
            self.target_names, self.class_names = [], {}
        self.entries, self.split, self.name = entries, split, name
        self.frames, self.image_size, self.channels, self.seed = int(frames), int(image_size), channels, seed
        self.rate, self.sampling, self.clips, self.crops = int(rate), sampling, int(clips), int(crops)
        self.flip, self.crop, self.short_side = bool(flip), crop, short_side
        self.backend, self.threads, self.pattern, self.start = backend, threads, pattern, start
        self.min_frames = int(min_frames)
        self.train = split == "train"
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.entries)

    # `dataset[(index, epoch)]` works too: the epoch travels with the index, so persistent DataLoader
    # workers (which never see a set_epoch call made in the main process) still draw new clips per epoch
    accepts_epoch_index = True

    def set_epoch(self, epoch: int) -> None:
        """Training clips and crops are drawn from (seed, epoch, index): call once per epoch for new ones."""
        self.epoch = int(epoch)

    def _split_index(self, index) -> tuple[int, int]:
        if isinstance(index, tuple):
            index, epoch = index
            return int(index), int(epoch)
        return int(index), self.epoch

    def _open(self, path: str):
        return open_video(path, backend=self.backend, pattern=self.pattern, start=self.start, threads=self.threads)

    def frame_indices(self, index: int, length: int, epoch: int | None = None) -> list[np.ndarray]:
        """The frame indices of item `index`'s clips in a video of `length` frames (epoch: default the current)."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch, index]) if self.train else None
        return clip_indices(length, self.frames, sampling=self.sampling, rate=self.rate, train=self.train,
                            clips=self.clips, rng=rng)

    def load(self, index) -> tuple[list[torch.Tensor], np.random.Generator | None]:
        """Decode item `index`'s clips at full resolution: a list of uint8 (T, H, W, 3), one per clip,
        and the generator of its crops and flips (None in evaluation)."""
        index, epoch = self._split_index(index)
        entry = self.entries[index]
        with self._open(entry.path) as video:
            length = len(video)
            if length < self.min_frames:
                raise VideoDecodeError(entry.path, "too short", f"{length} frames, min_frames={self.min_frames}")
            sets = self.frame_indices(index, length, epoch)
            wanted = np.unique(np.concatenate(sets))
            decoded = torch.from_numpy(np.ascontiguousarray(video.get(wanted.tolist())))
        position = {int(f): k for k, f in enumerate(wanted)}
        clips = [decoded[[position[int(f)] for f in s]] for s in sets]
        # crops and flips from their own stream, so changing the temporal rule leaves them alone
        rng = np.random.default_rng([self.seed, epoch, index, 1]) if self.train else None
        return clips, rng

    def __getitem__(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """Item `index` (an int, or an (index, epoch) pair) as (clip, labels)."""
        key = index
        index, _ = self._split_index(index)
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} samples")
        raw, rng = self.load(key)
        if self.train:
            out = [train_clip(c, self.image_size, rng, crop_mode=self.crop, flip=self.flip) for c in raw]
        else:
            out = [v for c in raw for v in eval_clips(c, self.image_size, short_side=self.short_side,
                                                         crops=self.crops)]
        out = [to_channels(c, self.channels) for c in out]
        clip = out[0] if len(out) == 1 else torch.stack(out)
        label = self.entries[index].label
        labels = torch.tensor([label] if label is not None else [], dtype=torch.int64)
        return clip, labels

    def check(self, index: int) -> int:
        """Open item `index`, check its length and decode its first and last frames; returns the frame count.

        Raises VideoDecodeError (missing, empty, truncated, undecodable, too short) like a training read would.
        """
        entry = self.entries[index]
        with self._open(entry.path) as video:
            length = len(video)
            if length < self.min_frames:
                raise VideoDecodeError(entry.path, "too short", f"{length} frames, min_frames={self.min_frames}")
            video.get([0])
            if length > 1:
                try:
                    video.get([length - 1])  # on its own: the backend seeks instead of decoding everything
                except VideoDecodeError:
                    # A seek into a cut file finds nothing; decoding from the start names where the stream ends,
                    # the diagnosis a training read gives ("truncated after frame N of M").
                    video.get(list(range(length)))
                    raise
        return length

    def views(self) -> int:
        """Clips an item holds: `clips` in training, `clips` x `crops` in evaluation."""
        return self.clips if self.train else self.clips * self.crops

    def groups(self) -> np.ndarray | None:
        """The source video (int id) of every entry (`entry_groups`, else the entry itself), or None when each item
        is one clip of a video of its own. Cross-validation keeps a group on one side of each fold."""
        names = entry_groups(self.entries)
        if names is None and self.views() == 1:
            return None
        names = names if names is not None else [e.path for e in self.entries]
        return np.unique(names, return_inverse=True)[1].astype(np.int64)

    def all_labels(self) -> torch.Tensor:
        """Labels of every sample (len, 1), or (len, 0) when unlabelled, without decoding anything."""
        if not self.labelled:
            return torch.zeros((len(self), 0), dtype=torch.int64)
        return torch.tensor([[e.label] for e in self.entries], dtype=torch.int64)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, frames={self.frames}, "
                f"image_size={self.image_size}, sampling={self.sampling!r}, rate={self.rate}, clips={self.clips}, "
                f"backend={self.backend!r})")


def split_list(argument: str, split: str, test: str | None = None, val: str | None = None) -> str:
    """The list file a split reads: the main list for "train" and for a spec without held-out lists; "test" reads
    `test` (else `val`), "val" reads `val` (else `test`). Held-out paths are relative like the main list."""
    held_out = (test or val) if split == "test" else (val or test) if split == "val" else None
    if held_out is None:
        return argument
    return str(Path(argument).parent / held_out)


def list_dataset(split: str = "train", *, argument: str, root: str | None = None, labels: bool = True,
                 test: str | None = None, val: str | None = None, **options) -> VideoDataset:
    """The `list:PATH[,test=PATH][,val=PATH]` spec: VideoMAE-style list files (see the module doc)."""
    path = split_list(argument, split, test, val)
    entries = read_list(path, root=root if root is not None else Path(argument).parent, labels=labels)
    return VideoDataset(entries, split, name=f"list:{path}", **options)
