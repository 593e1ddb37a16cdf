"""Spatial transforms on uint8 clips (T, H, W, C): the clip stays uint8 until `to_model_input`.

Training (one random draw per clip, from the `rng` passed in):
- `multi_scale_crop_box`: VideoMAE's pretraining crop (GroupMultiScaleCrop): a crop side from
  `int(short_side * s)` for s in (1, .875, .75, .66) (snapped to the output size when within
  3 px), width and height at most one scale apart, placed at one of 13 fixed positions
  (corners, centre, edge centres, quarter points), then resized to size x size.
- `random_resized_crop_box`: the Inception/torchvision crop (area fraction `scale`, aspect
  ratio `ratio` log-uniform, 10 tries, then the central crop) used by VideoMAE fine-tuning.
- `horizontal_flip` (with probability 1/2 in `train_clip`; off for SSv2 by default).
Evaluation: `short_side_resize`, then `center_crop` or `three_crop` (VideoMAE's test crops:
three squares spread along the long side).

Resizing is bilinear with antialiasing (torch), rounding back to uint8. ImageNet mean/std
normalisation is the last transform, `blockmae.data.transforms.to_model_input`, on the device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

SCALES = (1.0, 0.875, 0.75, 0.66)
CROPS = ("multiscale", "resized")


def _check_clip(clip: torch.Tensor) -> None:
    if not isinstance(clip, torch.Tensor) or clip.dtype != torch.uint8 or clip.ndim != 4:
        got = f"{clip.dtype} {tuple(clip.shape)}" if isinstance(clip, torch.Tensor) else type(clip).__name__
        raise ValueError(f"expected a uint8 clip (T, H, W, C), got {got}")


def resize(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of every frame to height x width."""
    _check_clip(clip)
    if tuple(clip.shape[1:3]) == (height, width):
        return clip
    x = clip.permute(0, 3, 1, 2)  # a channels-last view: torch's fast uint8 path, no float copy
    try:
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    except RuntimeError:  # a build without uint8 interpolation
        x = F.interpolate(x.float(), size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous()


def short_side_resize(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the shorter side is `size`, keeping the aspect ratio."""
    _check_clip(clip)
    h, w = clip.shape[1:3]
    if h <= w:
        return resize(clip, size, max(size, int(round(w * size / h))))
    return resize(clip, max(size, int(round(h * size / w))), size)


def crop(clip: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    return clip[:, top:top + height, left:left + width]


def horizontal_flip(clip: torch.Tensor) -> torch.Tensor:
    return clip.flip(2)


def fixed_offsets(width: int, height: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
    """VideoMAE's 13 crop positions (left, top): corners, centre, edge centres, quarter points."""
    ws, hs = (width - crop_w) // 4, (height - crop_h) // 4
    return [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs),
            (0, 2 * hs), (4 * ws, 2 * hs), (2 * ws, 4 * hs), (2 * ws, 0),
            (ws, hs), (3 * ws, hs), (ws, 3 * hs), (3 * ws, 3 * hs)]


def multi_scale_crop_box(height: int, width: int, size: int, rng: np.random.Generator,
                         scales=SCALES, max_distort: int = 1) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) of VideoMAE's multi-scale crop of an H x W frame."""
    base = min(height, width)
    sides = [max(1, int(base * s)) for s in scales]
    sides = [size if abs(s - size) < 3 else s for s in sides]
    pairs = [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]
    crop_w, crop_h = pairs[int(rng.integers(len(pairs)))]
    crop_w, crop_h = min(crop_w, width), min(crop_h, height)  # a snap to `size` may exceed a tiny frame
    offsets = fixed_offsets(width, height, crop_w, crop_h)
    left, top = offsets[int(rng.integers(len(offsets)))]
    return top, left, crop_h, crop_w


def random_resized_crop_box(height: int, width: int, rng: np.random.Generator, scale=(0.08, 1.0),
                            ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width) of an Inception-style random resized crop."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1)), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    _check_clip(clip)
    h, w = clip.shape[1:3]
    if h < size or w < size:
        raise ValueError(f"cannot centre-crop {size}x{size} from a {h}x{w} frame")
    return crop(clip, (h - size) // 2, (w - size) // 2, size, size)


def three_crop(clip: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Three size x size crops spread along the long side (start, middle, end), centred on the short side."""
    _check_clip(clip)
    h, w = clip.shape[1:3]
    if h < size or w < size:
        raise ValueError(f"cannot three-crop {size}x{size} from a {h}x{w} frame")
    step = (max(h, w) - size) / 2
    if h >= w:
        return [crop(clip, int(i * step), (w - size) // 2, size, size) for i in range(3)]
    return [crop(clip, (h - size) // 2, int(i * step), size, size) for i in range(3)]


def to_channels(clip: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB -> `channels` (3: unchanged; 1: ITU-R 601 luma, kept as (T, H, W, 1))."""
    if channels == clip.shape[-1]:
        return clip
    if channels == 1 and clip.shape[-1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114])
        return (clip.float() @ weights).round_().clamp_(0, 255).to(torch.uint8).unsqueeze(-1)
    raise ValueError(f"cannot turn a {clip.shape[-1]}-channel clip into {channels} channels")


def train_clip(clip: torch.Tensor, size: int, rng: np.random.Generator, *, crop_mode: str = "multiscale",
               flip: bool = True) -> torch.Tensor:
    """Training augmentation: a random crop (multi-scale or random-resized) resized to size x size, maybe flipped."""
    _check_clip(clip)
    h, w = clip.shape[1:3]
    if crop_mode == "multiscale":
        top, left, ch, cw = multi_scale_crop_box(h, w, size, rng)
    elif crop_mode == "resized":
        top, left, ch, cw = random_resized_crop_box(h, w, rng)
    else:
        raise ValueError(f"crop={crop_mode!r}, expected one of {', '.join(CROPS)}")
    out = resize(crop(clip, top, left, ch, cw), size, size)
    if flip and rng.random() < 0.5:
        out = horizontal_flip(out)
    return out


def eval_clips(clip: torch.Tensor, size: int, *, short_side: int | None = None, crops: int = 1) -> list[torch.Tensor]:
    """Evaluation: shorter side to `short_side` (default `size`), then the centre crop or three crops."""
    short_side = size if short_side is None else short_side
    if short_side < size:
        raise ValueError(f"short_side={short_side} is smaller than the crop size {size}")
    clip = short_side_resize(clip, short_side)
    if crops == 1:
        return [center_crop(clip, size)]
    if crops == 3:
        return three_crop(clip, size)
    raise ValueError(f"crops={crops}, expected 1 or 3")
