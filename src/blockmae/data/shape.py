"""The shape check every procedural dataset makes of its arguments."""

from __future__ import annotations

import numpy as np


def check_clip_shape(name: str, frames: int, image_size: int, channels: int) -> None:
    for key, value in (("frames", frames), ("image_size", image_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: {key}={value!r}, expected a positive integer")
    if channels not in (1, 3):
        raise ValueError(f"{name}: channels={channels!r}, expected 1 (gray) or 3 (RGB)")
