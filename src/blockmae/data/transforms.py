"""The last transform: uint8 clips (B, T, H, W, C) -> normalised float model input (B, C, T, H, W)."""

from __future__ import annotations

import torch


def to_model_input(clips: torch.Tensor, mean, std, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Runs on the training device, so decoding workers move 4x fewer bytes (uint8, not float)."""
    if clips.dtype != torch.uint8 or clips.ndim != 5:
        raise ValueError(f"clips must be uint8 (B, T, H, W, C), got {clips.dtype} {tuple(clips.shape)}")
    x = clips.permute(0, 4, 1, 2, 3).to(dtype).div_(255.0)
    shape = (1, -1, 1, 1, 1)
    mean = torch.as_tensor(mean, dtype=dtype, device=x.device).view(shape)
    std = torch.as_tensor(std, dtype=dtype, device=x.device).view(shape)
    return x.sub_(mean).div_(std)
