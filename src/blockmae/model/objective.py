"""What the decoders predict: the pixels of hidden tubelets, optionally normalised per tubelet."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def patchify(pixels: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, N, tubelet*patch*patch, C), tokens in (t, h, w) order."""
    b, c, t, h, w = pixels.shape
    x = pixels.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # b, t', h', w', tubelet, p, p, c
    return x.reshape(b, -1, tubelet * patch * patch, c)


def unpatchify(tokens: torch.Tensor, channels: int, grid: tuple[int, int, int], tubelet: int, patch: int) -> torch.Tensor:
    """Inverse of `patchify` after flattening: (B, N, tubelet*patch*patch*C) -> (B, C, T, H, W)."""
    b = tokens.shape[0]
    t, h, w = grid
    x = tokens.reshape(b, t, h, w, tubelet, patch, patch, channels)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, channels, t * tubelet, h * patch, w * patch)


@torch.no_grad()
def pixel_targets(video: torch.Tensor, mean, std, tubelet: int, patch: int, norm_pix: bool = True) -> torch.Tensor:
    """Per-token regression targets (B, N, tubelet*patch*patch*C) in float32.

    The clip is first brought back to [0, 1] pixels (undoing the input normalisation); with
    `norm_pix`, each tubelet is standardised per channel (unbiased std, +1e-6) as in VideoMAE.
    """
    video = video.float()
    shape = (1, -1, 1, 1, 1)
    pixels = video * torch.as_tensor(std, device=video.device).view(shape) + torch.as_tensor(mean, device=video.device).view(shape)
    x = patchify(pixels, tubelet, patch)
    if norm_pix:
        x = (x - x.mean(dim=-2, keepdim=True)) / (x.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    return x.flatten(2)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over hidden tubelets only (pred and target are both hidden-only)."""
    return F.mse_loss(pred.float(), target)
