"""Which frames of an n-frame video make a clip of `frames` frames.

Three rules, each a pure function of its arguments (randomness only through `rng`), so the
exact indices are testable:

- `rate_indices` (training, VideoMAE pretraining): `frames` frames `rate` apart from a random
  start. Follows VideoMAE's loader (`_sample_train_indices` + `get_frame_id_list` with one
  segment and no temporal jitter), quirks included: the start is drawn from
  `[0, n - frames*rate]`; the clip steps forward only while the next frame is at most
  `n - 2`, then repeats the frame it reached. So a video shorter than `frames*rate` starts at
  0 and holds its last reachable frame (3 frames, rate 1 -> 0 1 1 1...; rate 2 -> 0 0 0...),
  and frame n-1 is never stepped onto.
- `segment_indices` (training, TSN, the SSv2 default): cut the video into `frames` equal
  segments and take one random frame from each. Videos with fewer than `frames` frames get
  `floor(i * n / frames)` (VideoMAE/TSN would return frame 0 throughout; spreading keeps the
  clip moving).
- Evaluation, deterministic: `uniform_indices` (VideoMAE's test views: the video strided by
  `rate`, padded with its last frame up to `frames`, and `views` windows spread evenly from
  its start to its end; one view is the centre window) and `segment_eval_indices` (TSN
  test: the frame at fraction `(view + 0.5) / views` of each segment).
"""

from __future__ import annotations

import numpy as np


def _check(n: int, frames: int) -> None:
    if n < 1:
        raise ValueError(f"a video needs at least one frame, got n={n}")
    if frames < 1:
        raise ValueError(f"frames={frames}, expected a positive integer")


def rate_indices(n: int, frames: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """VideoMAE pretraining sampling: `frames` indices `rate` apart from a random start (see module doc)."""
    _check(n, frames)
    if rate < 1:
        raise ValueError(f"rate={rate}, expected a positive integer")
    room = n - frames * rate + 1
    index = int(rng.integers(room)) if room > 0 else 0
    out = np.empty(frames, dtype=np.int64)
    for i in range(frames):
        out[i] = index
        if index + rate <= n - 2:  # VideoMAE: 1-based offset + rate < n
            index += rate
    return out


def segment_indices(n: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """TSN training sampling: one random frame from each of `frames` equal segments."""
    _check(n, frames)
    length = n // frames
    if length > 0:
        return np.arange(frames, dtype=np.int64) * length + rng.integers(length, size=frames)
    return (np.arange(frames, dtype=np.int64) * n) // frames


def uniform_indices(n: int, frames: int, rate: int, view: int = 0, views: int = 1) -> np.ndarray:
    """VideoMAE test sampling, view `view` of `views`: a window of `frames` in the video strided by `rate`."""
    _check(n, frames)
    if not 0 <= view < views:
        raise ValueError(f"view={view} out of range for views={views}")
    strided = np.arange(0, n, rate, dtype=np.int64)
    if len(strided) < frames:
        strided = np.concatenate([strided, np.full(frames - len(strided), strided[-1])])
    spare = len(strided) - frames
    start = int(view * spare / (views - 1)) if views > 1 else spare // 2
    return strided[start:start + frames]


def segment_eval_indices(n: int, frames: int, view: int = 0, views: int = 1) -> np.ndarray:
    """TSN test sampling: the frame at fraction (view + 0.5) / views of each of `frames` segments."""
    _check(n, frames)
    if not 0 <= view < views:
        raise ValueError(f"view={view} out of range for views={views}")
    tick = n / frames
    offset = (view + 0.5) / views
    return np.minimum((tick * (np.arange(frames) + offset)).astype(np.int64), n - 1)


def clip_indices(n: int, frames: int, *, sampling: str, rate: int, train: bool, clips: int = 1,
                 rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """The index arrays of `clips` clips: random ones for training, the `clips` evaluation views otherwise."""
    if sampling not in ("rate", "segment"):
        raise ValueError(f"sampling={sampling!r}, expected 'rate' or 'segment'")
    if train:
        if rng is None:
            raise ValueError("training sampling needs a random generator")
        if sampling == "rate":
            return [rate_indices(n, frames, rate, rng) for _ in range(clips)]
        return [segment_indices(n, frames, rng) for _ in range(clips)]
    if sampling == "rate":
        return [uniform_indices(n, frames, rate, v, clips) for v in range(clips)]
    return [segment_eval_indices(n, frames, v, clips) for v in range(clips)]
