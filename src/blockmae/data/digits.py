"""Moving handwritten digits: a procedural video set with known motion, for laptops and tests.

The source images are scikit-learn's bundled 8x8 digits (no download). Each clip shows one
digit (optionally plus a distractor) gliding in a straight line across a black canvas; the
labels are the digit, the direction and the speed class, so a probe can tell whether a model
encodes appearance, motion direction and motion magnitude.

Conventions (shared with `gratings`): direction is an angle in degrees on the screen with
x to the right and y *up*: 0 = moving right, 90 = moving up (towards row 0), 180 = left,
270 = down. Speed is a fraction of the longest straight path the digit can travel in that
direction without leaving the canvas, so the classes mean the same for any frames/size.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import Dataset

from .shape import check_clip_shape

# Independent of the dataset seed, so train and test never share a source image.
SPLIT_SEED = 20240517
TEST_FRACTION = 0.2
SPLITS = ("train", "test")
DEFAULT_N = {"train": 2048, "test": 512}
SCALE = 0.4  # side of the 8x8 image area, as a fraction of the frame size

DIRECTIONS = (0, 45, 90, 135, 180, 225, 270, 315)
_DIRECTION_WORDS = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")
# Unit steps (x right, y up) scaled so the larger component is 1: a path of length
# `free` along one of these stays inside a square of side `free`.
_STEPS = np.array([(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)], dtype=np.float64)
SPEEDS = {"slow": 0.2, "medium": 0.5, "fast": 0.9}


@functools.lru_cache(maxsize=1)
def _source() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digit images as floats in [0, 1], and their labels (read once per process)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float64), d.target.astype(np.int64)


def split_image_ids(split: str) -> np.ndarray:
    """Sorted ids (into `load_digits()`) of the source images a split may use."""
    if split not in SPLITS:
        raise ValueError(f"digits: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    n = len(_source()[1])
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_test = int(round(TEST_FRACTION * n))
    ids = perm[n_test:] if split == "train" else perm[:n_test]
    return np.sort(ids)


def _tent(top: np.ndarray, pixels: int, step: float) -> np.ndarray:
    """Bilinear weights (T, pixels, 8) that sample a source axis placed at sub-pixel `top`.

    Sampling the 8 source pixels with a tent kernel at every canvas pixel centre does the
    upscaling and the sub-pixel placement in one go, and fades to zero outside the image,
    so slow motion is smooth rather than jumping whole pixels.
    """
    centres = np.arange(pixels, dtype=np.float64) + 0.5
    u = (centres[None, :] - top[:, None]) / step - 0.5
    return np.maximum(0.0, 1.0 - np.abs(u[:, :, None] - np.arange(8)))


class MovingDigits(Dataset):
    """Clips of a digit moving in a straight line; labels (digit, direction, speed).

    The digit's footprint (the 8x8 image area plus the half-pixel bilinear fringe) stays
    inside the canvas in every frame; the start is drawn so the whole trajectory fits, so
    there is no bouncing and the direction is unambiguous. With `digits=2` a second,
    distractor digit (another image, its own direction and speed) moves too, combined by
    max; the labels describe the first digit only.
    """

    target_names = ["digit", "direction", "speed"]
    class_names = {
        "digit": [str(d) for d in range(10)],
        "direction": [f"{a} ({w})" for a, w in zip(DIRECTIONS, _DIRECTION_WORDS)],
        "speed": list(SPEEDS),
    }

    def __init__(self, split: str = "train", *, frames: int, image_size: int, channels: int = 3,
                 seed: int = 0, n: int | None = None, digits: int = 1):
        check_clip_shape("digits", frames, image_size, channels)
        if digits not in (1, 2):
            raise ValueError(f"digits: digits={digits!r}, expected 1 or 2")
        self.image_ids = split_image_ids(split)
        n = DEFAULT_N[split] if n is None else n
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"digits: n={n!r}, expected a positive integer")
        self.name = "digits"
        self.split, self.frames, self.image_size, self.channels = split, frames, image_size, channels
        self.seed, self.n, self.digits = seed, int(n), digits
        self._split_id = SPLITS.index(split)
        self.target_names = list(MovingDigits.target_names)
        self.class_names = {k: list(v) for k, v in MovingDigits.class_names.items()}
        # Geometry in pixels: `step` = canvas pixels per source pixel; the footprint is 9 steps
        # wide (8 pixels + half a pixel of bilinear fringe each side); `free` = room to move.
        self.step = SCALE * image_size / 8.0
        self.footprint = 9.0 * self.step
        self.free = image_size - self.footprint

    def __len__(self) -> int:
        return self.n

    def _sprite(self, rng: np.random.Generator, exclude: int | None = None) -> dict:
        pool = len(self.image_ids)
        j = int(rng.integers(pool - (exclude is not None)))
        if exclude is not None and j >= exclude:
            j += 1
        direction = int(rng.integers(len(DIRECTIONS)))
        speed = int(rng.integers(len(SPEEDS)))
        dist = list(SPEEDS.values())[speed] * self.free
        dx, dy_up = dist * _STEPS[direction]
        d = np.array([-dy_up, dx])  # (rows, cols): up on screen is towards row 0
        start = np.maximum(0.0, -d) + rng.random(2) * (self.free - np.abs(d))
        frac = np.arange(self.frames) / max(self.frames - 1, 1)
        box = start[None, :] + frac[:, None] * d[None, :]  # (T, 2) top-left of the footprint
        return dict(pool_index=j, image_id=int(self.image_ids[j]), direction=direction, speed=speed, box=box)

    def params(self, index: int) -> dict:
        """What clip `index` shows: image id(s), direction/speed classes, per-frame footprint boxes.

        Drawn from `default_rng([seed, split, index])` alone, so a clip is the same in any
        process and any order (DataLoader workers do not matter).
        """
        if not 0 <= index < self.n:
            raise IndexError(f"digits: index {index} out of range for {self.n} clips")
        rng = np.random.default_rng([self.seed, self._split_id, index])
        sprites = [self._sprite(rng)]
        if self.digits == 2:
            sprites.append(self._sprite(rng, exclude=sprites[0]["pool_index"]))
        images, targets = _source()
        first = sprites[0]
        labels = [int(targets[first["image_id"]]), first["direction"], first["speed"]]
        return dict(sprites=sprites, labels=labels)

    def _render(self, sprite: dict) -> np.ndarray:
        image = _source()[0][sprite["image_id"]]
        top = sprite["box"] + self.step / 2.0  # image area starts half a source pixel inside
        wy = _tent(top[:, 0], self.image_size, self.step)  # (T, H, 8)
        wx = _tent(top[:, 1], self.image_size, self.step)  # (T, W, 8)
        return wy @ image @ wx.transpose(0, 2, 1)  # (T, H, W) in [0, 1]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params(index)
        frames = self._render(p["sprites"][0])
        for sprite in p["sprites"][1:]:
            frames = np.maximum(frames, self._render(sprite))
        clip = np.floor(np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        clip = np.repeat(clip[..., None], self.channels, axis=-1)
        return torch.from_numpy(clip), torch.tensor(p["labels"], dtype=torch.int64)

    def all_labels(self) -> torch.Tensor:
        """Labels of every clip (len, n_targets) without rendering: for stratification and probes."""
        return torch.tensor([self.params(i)["labels"] for i in range(self.n)], dtype=torch.int64)

    def __repr__(self) -> str:
        return (f"MovingDigits(split={self.split!r}, n={self.n}, digits={self.digits}, frames={self.frames}, "
                f"image_size={self.image_size}, channels={self.channels}, seed={self.seed})")
