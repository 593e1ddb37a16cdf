"""Textured scenes: a procedural pretraining set in which hidden tubelets are predictable.

Each clip is a camera panning over a coloured 1/f texture (the amplitude spectrum of natural
images) lit by a linear illumination gradient, with 1-3 solid shapes gliding over it, nearer
shapes occluding farther ones. Unlike
moving digits on black (mostly empty tubelets) or a single grating (a global phase to
extrapolate), most of every frame carries structure that is correlated over several patches
and moves rigidly, so a masked tubelet can be inferred from visible ones: the setting in
which a masked autoencoder learns something at CPU scale (docs/results.md, the preset sweep).

Targets span three levels, so depth has something to show:
- low level: the colour of the front shape, the texture's roughness (spectral slope);
- mid level: the camera's direction and speed;
- high level: the front shape's identity among the others, and how many shapes there are.

Conventions as `digits`: direction is an angle on the screen, x right and y *up* (0 = the
scene content moves right, 90 = up). Every clip is drawn from `default_rng([seed, split,
index])` alone, so it is the same in any process, and train and test never share a clip.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .shape import check_clip_shape

SPLITS = ("train", "test")
DEFAULT_N = {"train": 100_000, "test": 1024}
DIRECTIONS = (0, 45, 90, 135, 180, 225, 270, 315)
SPEEDS = {"slow": 0.06, "medium": 0.14, "fast": 0.25}  # frame widths per frame
SHAPES = ("disc", "square", "triangle", "ring")
COLOURS = {"red": (0.9, 0.15, 0.1), "green": (0.15, 0.8, 0.2), "blue": (0.15, 0.3, 0.95),
           "yellow": (0.95, 0.85, 0.1), "white": (0.97, 0.97, 0.97), "black": (0.03, 0.03, 0.03)}
SLOPES = {"smooth": 2.0, "medium": 1.5, "rough": 1.0}  # amplitude ~ 1/f^slope
COUNTS = (1, 2, 3)
TEXTURE_CONTRAST = 0.1  # std of the luminance field
LIGHT = (0.3, 0.9)  # range of the illumination gradient's strength, brightness change per frame width


def texture(rng: np.random.Generator, side: int, slope: float, channels: int, light: float = 0.0) -> np.ndarray:
    """A (side, side, channels) texture in [0, 1] with amplitude spectrum 1/f^slope, colours mixed
    from one luminance field and a weaker chroma field (natural images are mostly luminance), lit by
    a linear illumination gradient of strength `light` (brightness change across `side` pixels)."""
    f = np.sqrt(np.fft.fftfreq(side)[:, None] ** 2 + np.fft.fftfreq(side)[None, :] ** 2)
    f[0, 0] = 1.0
    amplitude = f ** -slope
    amplitude[0, 0] = 0.0
    fields = []
    for _ in range(2):
        phase = rng.uniform(0, 2 * np.pi, (side, side))
        field = np.real(np.fft.ifft2(amplitude * np.exp(1j * phase)))
        fields.append(field / (field.std() + 1e-12))
    luminance, chroma = fields
    tint = rng.uniform(-1, 1, 3)
    base = rng.uniform(0.35, 0.65, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-0.5, 0.5, side)
    illumination = light * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None])
    rgb = base + (illumination + TEXTURE_CONTRAST * luminance)[..., None] + 0.5 * TEXTURE_CONTRAST * chroma[..., None] * tint
    rgb = np.clip(rgb, 0.0, 1.0)
    if channels == 1:
        rgb = rgb @ np.array([0.299, 0.587, 0.114])[:, None]
    return rgb


def _shape_mask(kind: str, yy: np.ndarray, xx: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Coverage in [0, 1] of a shape centred at 0 (one-pixel soft edge, so sub-pixel motion is smooth)."""
    r = np.sqrt(yy ** 2 + xx ** 2)
    if kind == "disc":
        d = r - radius
    elif kind == "ring":
        d = np.abs(r - 0.7 * radius) - 0.3 * radius
    else:
        c, s = np.cos(angle), np.sin(angle)
        u, v = c * xx + s * yy, -s * xx + c * yy
        if kind == "square":
            d = np.maximum(np.abs(u), np.abs(v)) - 0.8 * radius
        else:  # triangle: three half-planes at 120 degrees
            normals = [(np.cos(a), np.sin(a)) for a in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3)]
            d = np.max(np.stack([nx * u + ny * v for nx, ny in normals]), axis=0) - 0.5 * radius
    return np.clip(0.5 - d, 0.0, 1.0)


class TexturedScenes(Dataset):
    """Clips of a camera panning over a 1/f texture with 1-3 moving shapes; six targets."""

    target_names = ["colour", "texture", "direction", "speed", "shape", "count"]
    class_names = {
        "colour": list(COLOURS),
        "texture": list(SLOPES),
        "direction": [str(d) for d in DIRECTIONS],
        "speed": list(SPEEDS),
        "shape": list(SHAPES),
        "count": [str(c) for c in COUNTS],
    }

    def __init__(self, split: str = "train", *, frames: int, image_size: int, channels: int = 3,
                 seed: int = 0, n: int | None = None, shapes: int | None = None):
        check_clip_shape("scenes", frames, image_size, channels)
        if split not in SPLITS:
            raise ValueError(f"scenes: unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        n = DEFAULT_N[split] if n is None else n
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"scenes: n={n!r}, expected a positive integer")
        if shapes is not None and shapes not in COUNTS:
            raise ValueError(f"scenes: shapes={shapes!r}, expected one of {COUNTS} (or leave it out for 1-3)")
        self.name = "scenes"
        self.split, self.frames, self.image_size, self.channels = split, frames, image_size, channels
        self.seed, self.n, self.shapes = seed, int(n), shapes
        self._split_id = SPLITS.index(split)
        self.target_names = list(TexturedScenes.target_names)
        self.class_names = {k: list(v) for k, v in TexturedScenes.class_names.items()}
        travel = max(SPEEDS.values()) * image_size * max(frames - 1, 1)  # the camera's longest path
        self._side = int(np.ceil(image_size + travel)) + 4

    def __len__(self) -> int:
        return self.n

    def _rng(self, index: int) -> np.random.Generator:
        if not 0 <= index < self.n:
            raise IndexError(f"scenes: index {index} out of range for {self.n} clips")
        return np.random.default_rng([self.seed, self._split_id, index])

    def _draw_params(self, rng: np.random.Generator) -> dict:
        count = self.shapes or int(rng.choice(COUNTS))
        labels = dict(texture=int(rng.integers(len(SLOPES))), direction=int(rng.integers(len(DIRECTIONS))),
                      speed=int(rng.integers(len(SPEEDS))), count=COUNTS.index(count))
        size = self.image_size
        objects = []
        colours = rng.permutation(len(COLOURS))  # distinct colours, so 'the front shape' is well defined
        for i in range(count):
            radius = size * rng.uniform(0.13, 0.2)
            angle = np.deg2rad(rng.uniform(0, 360))
            velocity = rng.uniform(-0.08, 0.08, 2) * size
            start = rng.uniform(radius, size - radius, 2) - velocity * (self.frames - 1) / 2
            objects.append(dict(kind=int(rng.integers(len(SHAPES))), colour=int(colours[i]), radius=radius,
                                angle=angle, start=start, velocity=velocity))
        front = objects[-1]  # drawn last: never occluded
        labels.update(colour=front["colour"], shape=front["kind"])
        return dict(labels=[labels[k] for k in self.target_names], objects=objects, **labels)

    def params(self, index: int) -> dict:
        """What clip `index` shows: labels (in `target_names` order), the shapes and the camera classes."""
        return self._draw_params(self._rng(index))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = self._rng(index)
        p = self._draw_params(rng)
        size, frames = self.image_size, self.frames
        light = rng.uniform(*LIGHT) * self._side / size
        field = texture(rng, self._side, list(SLOPES.values())[p["texture"]], self.channels, light)
        angle = np.deg2rad(DIRECTIONS[p["direction"]])
        step = list(SPEEDS.values())[p["speed"]] * size
        # Content moves by (dx right, dy up) per frame: the window moves the other way over the texture.
        dx, dy = step * np.cos(angle), step * np.sin(angle)
        centre = (self._side - size) / 2.0
        rows, cols = np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64)
        out = np.empty((frames, size, size, self.channels))
        for t in range(frames):
            shift = t - (frames - 1) / 2
            out[t] = _bilinear(field, centre + rows + dy * shift, centre + cols - dx * shift)
            for obj in p["objects"]:
                cy, cx = obj["start"] + obj["velocity"] * t
                cover = _shape_mask(SHAPES[obj["kind"]], rows[:, None] + 0.5 - cy, cols[None, :] + 0.5 - cx,
                                    obj["radius"], obj["angle"])[..., None]
                colour = np.asarray(list(COLOURS.values())[obj["colour"]])
                colour = colour if self.channels == 3 else np.array([colour @ np.array([0.299, 0.587, 0.114])])
                out[t] = out[t] * (1 - cover) + colour * cover
        clip = np.floor(np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return torch.from_numpy(clip), torch.tensor(p["labels"], dtype=torch.int64)

    def all_labels(self) -> torch.Tensor:
        """Labels of every clip (len, n_targets) without rendering: for stratification and probes."""
        return torch.tensor([self.params(i)["labels"] for i in range(self.n)], dtype=torch.int64)

    def __repr__(self) -> str:
        return (f"TexturedScenes(split={self.split!r}, n={self.n}, frames={self.frames}, image_size={self.image_size}, "
                f"channels={self.channels}, seed={self.seed})")


def _bilinear(field: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """field (S, S, C) sampled at the grid rows x cols (sub-pixel, clamped at the border)."""
    side = field.shape[0]
    r0 = np.clip(np.floor(rows).astype(int), 0, side - 2)
    c0 = np.clip(np.floor(cols).astype(int), 0, side - 2)
    fr = np.clip(rows - r0, 0, 1)[:, None, None]
    fc = np.clip(cols - c0, 0, 1)[None, :, None]
    a, b = field[r0][:, c0], field[r0][:, c0 + 1]
    c, d = field[r0 + 1][:, c0], field[r0 + 1][:, c0 + 1]
    return (a * (1 - fc) + b * fc) * (1 - fr) + (c * (1 - fc) + d * fc) * fr
