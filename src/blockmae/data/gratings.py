"""Drifting sine gratings (docs/paper.md): probe sets whose every factor is known.

A pixel is `0.5 + 0.5 * contrast * s(x, y, t) * colour`, scaled to uint8 0..255 (round half
up), with the grating

    s = sin(2*pi * (sf * (x*cos(theta) + y*sin(theta)) - tf * t)),

x, y in frame widths measured from the bottom-left corner (x to the right, y *up*; pixel
centres, so x = (col + 0.5) / W and y = (H - row - 0.5) / W), t = frame / fps in seconds.
With this sign the crests drift along (cos theta, sin theta): theta = 0 drifts right,
90 drifts up (towards row 0), the same angle convention as `digits`. Spatial frequency is
in cycles per frame width, temporal frequency in Hz (cycles per second).

The factor grid follows the paper, aliasing included: at the default 6.25 fps, 4, 6 and
8 Hz lie above the Nyquist frequency (3.125 Hz) and are seen aliased (8 Hz looks like
1.75 Hz drifting the other way), and high spatial frequencies alias on small frames
(24 cycles need more than 48 pixels). They remain distinct, learnable classes.

For one channel the colour becomes its Rec. 601 luma (0.299 R + 0.587 G + 0.114 B), so a
gray clip equals the luma of the RGB clip and red, green and blue stay distinguishable.

Both sets are single-set probe datasets (the paper evaluates them by cross-validation):
`split` is accepted and ignored, and `seed` only picks the `n=` subset.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .shape import check_clip_shape

COLOURS = {
    "gray": (1.0, 1.0, 1.0),
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "orange": (1.0, 0.5, 0.0),
}
LUMA = (0.299, 0.587, 0.114)
DEFAULT_FPS = 6.25


def colour_vector(colour: str, channels: int) -> np.ndarray:
    rgb = np.asarray(COLOURS[colour], dtype=np.float64)
    return rgb if channels == 3 else np.array([rgb @ np.asarray(LUMA)])


def _coords(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in frame widths: x (W,) to the right, y (H,) upwards."""
    centres = np.arange(image_size, dtype=np.float64) + 0.5
    return centres / image_size, (image_size - centres) / image_size


def _wave(sf: float, orientation: float, tf: float, t: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """s(x, y, t) on the grid (T, len(y), len(x)).

    sin(a - b) = sin a cos b - cos a sin b: the spatial phase is evaluated once per pixel and
    each frame is a weighted sum of two images, far cheaper than T*H*W sines.
    """
    theta = np.deg2rad(orientation)
    phase = 2 * np.pi * sf * (y[:, None] * np.sin(theta) + x[None, :] * np.cos(theta))
    omega = 2 * np.pi * tf * t
    # float32 from here: ample for 8-bit output, and half the memory traffic.
    sin_p, cos_p = np.sin(phase).astype(np.float32), np.cos(phase).astype(np.float32)
    a, b = np.cos(omega).astype(np.float32), np.sin(omega).astype(np.float32)
    return a[:, None, None] * sin_p[None] - b[:, None, None] * cos_p[None]


def _to_uint8(s: np.ndarray, contrast: float, colour: str, channels: int) -> np.ndarray:
    # 255 * (0.5 + 0.5*c*s*colour), rounded half up: adding 0.5 then truncating (values are >= 0).
    scale = (127.5 * contrast * colour_vector(colour, channels)).astype(np.float32)
    value = s[..., None] * scale + np.float32(128.0)
    return np.clip(value, 0.0, 255.0, out=value).astype(np.uint8)


def render_grating(*, frames: int, image_size: int, channels: int = 3, fps: float = DEFAULT_FPS,
                   sf: float, orientation: float, tf: float, contrast: float, colour: str) -> np.ndarray:
    """One full-frame drifting grating as uint8 (T, H, W, C); any parameter values, not only the grid."""
    x, y = _coords(image_size)
    t = np.arange(frames, dtype=np.float64) / fps
    return _to_uint8(_wave(sf, orientation, tf, t, x, y), contrast, colour, channels)


def render_two_region(*, frames: int, image_size: int, channels: int = 3, fps: float = DEFAULT_FPS,
                      sf_left: float, sf_right: float, orientation_left: float, orientation_right: float,
                      tf: float, contrast: float, colour: str) -> np.ndarray:
    """Left half (columns < W // 2) and right half carry their own grating.

    Each half is evaluated in whole-frame coordinates, so a frequency means the same as in
    the single grating and the two halves differ only where their parameters differ.
    """
    x, y = _coords(image_size)
    t = np.arange(frames, dtype=np.float64) / fps
    half = image_size // 2
    s = np.concatenate([_wave(sf_left, orientation_left, tf, t, x[:half], y),
                        _wave(sf_right, orientation_right, tf, t, x[half:], y)], axis=2)
    return _to_uint8(s, contrast, colour, channels)


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


class _FactorialGratings(Dataset):
    """Shared machinery: a full factorial of factors, index order = itertools.product order."""

    name = ""
    factors: dict[str, tuple] = {}

    def __init__(self, split: str = "train", *, frames: int, image_size: int, channels: int = 3,
                 seed: int = 0, n: int | None = None, fps: float = DEFAULT_FPS):
        check_clip_shape(self.name, frames, image_size, channels)
        if not fps > 0:
            raise ValueError(f"{self.name}: fps={fps!r}, expected a positive number")
        self.split = split  # accepted so every dataset is built the same way; there is one set
        self.frames, self.image_size, self.channels, self.seed, self.fps = frames, image_size, channels, seed, fps
        self.shape = tuple(len(v) for v in self.factors.values())
        self.total = int(np.prod(self.shape))
        if n is None:
            self.indices = np.arange(self.total)
        else:
            if not isinstance(n, (int, np.integer)) or not 1 <= n <= self.total:
                raise ValueError(f"{self.name}: n={n!r}, expected an integer from 1 to {self.total} "
                                 f"(the size of the full set)")
            rng = np.random.default_rng([seed, self.total])
            self.indices = np.sort(rng.choice(self.total, size=n, replace=False))
        self.n = len(self.indices)
        # Row i = the i-th tuple of itertools.product over the factors (C order).
        table = np.stack(np.unravel_index(np.arange(self.total), self.shape), axis=1).astype(np.int64)
        self._factor_table = table  # (total, n_factors) class indices of the factors
        self._labels = self._labels_from_factors(table)

    # Subclasses: what targets derive from the factors, and how a setting is drawn.
    def _labels_from_factors(self, table: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _draw(self, p: dict) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.n

    def params(self, index: int) -> dict:
        """Physical factor values of clip `index` (after the `n=` subset), e.g. {'sf': 4, ...}."""
        if not 0 <= index < self.n:
            raise IndexError(f"{self.name}: index {index} out of range for {self.n} clips")
        row = self._factor_table[self.indices[index]]
        return {k: v[j] for (k, v), j in zip(self.factors.items(), row)}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self._draw(self.params(index))
        return torch.from_numpy(clip), torch.from_numpy(self._labels[self.indices[index]].copy())

    def all_labels(self) -> torch.Tensor:
        """Labels of every clip (len, n_targets) without rendering: for stratification and probes."""
        return torch.from_numpy(self._labels[self.indices].copy())

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={self.n} of {self.total}, frames={self.frames}, "
                f"image_size={self.image_size}, channels={self.channels}, fps={self.fps:g}, seed={self.seed})")


class DriftingGratings(_FactorialGratings):
    """One grating over the whole frame; 10,800 clips; a target per factor."""

    name = "gratings"
    factors = {
        "spatial_frequency": (4, 8, 12, 16, 20, 24),
        "orientation": tuple(range(0, 360, 30)),
        "temporal_frequency": (0.5, 1, 2, 4, 6, 8),
        "contrast": (0.2, 0.4, 0.6, 0.8, 1.0),
        "colour": tuple(COLOURS),
    }
    target_names = list(factors)
    class_names = {k: [_fmt(v) for v in vals] for k, vals in factors.items()}

    def __init__(self, split: str = "train", **kwargs):
        super().__init__(split, **kwargs)
        self.target_names = list(DriftingGratings.target_names)
        self.class_names = {k: list(v) for k, v in DriftingGratings.class_names.items()}

    def _labels_from_factors(self, table: np.ndarray) -> np.ndarray:
        return table.copy()

    def _draw(self, p: dict) -> np.ndarray:
        return render_grating(frames=self.frames, image_size=self.image_size, channels=self.channels,
                              fps=self.fps, sf=p["spatial_frequency"], orientation=p["orientation"],
                              tf=p["temporal_frequency"], contrast=p["contrast"], colour=p["colour"])


_SF2 = (4, 10, 16)
_ORI2 = tuple(range(0, 360, 30))
_DELTA2 = (0, 45, 90, 135)
_SF_DELTAS = tuple(sorted({r - l for l in _SF2 for r in _SF2}))
_ORI_RIGHT = tuple(sorted({(o + d) % 360 for o in _ORI2 for d in _DELTA2}))


class TwoRegionGratings(_FactorialGratings):
    """Left and right halves carry different gratings; 15,552 clips; 9 targets, 4 relational.

    The relational targets (sf_delta, sf_higher_side, sf_match, orientation_delta,
    orientation_match) can only be read from both halves together. Temporal frequency,
    contrast and colour are shared by the halves and are factors, not targets.
    """

    name = "gratings2"
    factors = {
        "sf_left": _SF2,
        "sf_right": _SF2,
        "orientation_left": _ORI2,
        "orientation_delta": _DELTA2,
        "temporal_frequency": (2, 5, 8),
        "contrast": (0.33, 0.67, 1.0),
        "colour": ("gray", "red", "green", "blue"),
    }
    target_names = ["sf_left", "sf_right", "sf_delta", "sf_higher_side", "sf_match",
                    "orientation_left", "orientation_right", "orientation_delta", "orientation_match"]
    class_names = {
        "sf_left": [_fmt(v) for v in _SF2],
        "sf_right": [_fmt(v) for v in _SF2],
        "sf_delta": [_fmt(v) for v in _SF_DELTAS],  # sf_right - sf_left
        "sf_higher_side": ["left", "right", "equal"],
        "sf_match": ["no", "yes"],
        "orientation_left": [_fmt(v) for v in _ORI2],
        "orientation_right": [_fmt(v) for v in _ORI_RIGHT],  # (left + delta) mod 360
        "orientation_delta": [_fmt(v) for v in _DELTA2],
        "orientation_match": ["no", "yes"],
    }

    def __init__(self, split: str = "train", **kwargs):
        super().__init__(split, **kwargs)
        self.target_names = list(TwoRegionGratings.target_names)
        self.class_names = {k: list(v) for k, v in TwoRegionGratings.class_names.items()}

    def _labels_from_factors(self, table: np.ndarray) -> np.ndarray:
        sf = np.asarray(_SF2)
        sf_l, sf_r = sf[table[:, 0]], sf[table[:, 1]]
        ori_l = np.asarray(_ORI2)[table[:, 2]]
        delta = np.asarray(_DELTA2)[table[:, 3]]
        ori_r = (ori_l + delta) % 360
        higher = np.where(sf_l > sf_r, 0, np.where(sf_r > sf_l, 1, 2))
        return np.stack([
            table[:, 0], table[:, 1],
            np.searchsorted(_SF_DELTAS, sf_r - sf_l),
            higher,
            (sf_l == sf_r).astype(np.int64),
            table[:, 2],
            np.searchsorted(_ORI_RIGHT, ori_r),
            table[:, 3],
            (delta == 0).astype(np.int64),
        ], axis=1).astype(np.int64)

    def _draw(self, p: dict) -> np.ndarray:
        return render_two_region(frames=self.frames, image_size=self.image_size, channels=self.channels,
                                 fps=self.fps, sf_left=p["sf_left"], sf_right=p["sf_right"],
                                 orientation_left=p["orientation_left"],
                                 orientation_right=(p["orientation_left"] + p["orientation_delta"]) % 360,
                                 tf=p["temporal_frequency"], contrast=p["contrast"], colour=p["colour"])
