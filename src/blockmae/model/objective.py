"""What the decoders predict, in one place: the pixels of hidden tubelets, optionally normalised per
tubelet (VideoMAE's normalised-pixel target), the layouts between clips and tubelets, and the way back
from a prediction to pixels. Training, the held-out loss, the reconstruction pictures and the tests
all use these functions.

Two tubelet layouts exist: the embedding's (C, t, p, p), which a Conv3d kernel reads, and the
target's (t, p, p, C), VideoMAE's order for what a decoder predicts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unnormalise(video: torch.Tensor, mean, std) -> torch.Tensor:
    """A model input (B, C, T, H, W) back to [0, 1] pixels (float32), undoing the input normalisation."""
    shape = (1, -1, 1, 1, 1)
    video = video.float()
    return video * torch.as_tensor(std, device=video.device).view(shape) + torch.as_tensor(mean, device=video.device).view(shape)


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


def kernel_tubelets(video: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, N, C*t*p*p): each token's tubelet in the embedding kernel's (C, t, p, p) order."""
    b, c, t, h, w = video.shape
    x = video.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch).permute(0, 2, 4, 6, 1, 3, 5, 7)
    return x.reshape(b, (t // tubelet) * (h // patch) * (w // patch), -1)


@torch.no_grad()
def tubelet_targets(tubelets: torch.Tensor, channels: int, mean, std, norm_pix: bool) -> torch.Tensor:
    """Targets of tubelets already cut out: (B, n, C*t*p*p) model input in kernel order -> (B, n, t*p*p*C) float32.

    Each tubelet goes back to [0, 1] pixels; with `norm_pix` it is standardised per channel (unbiased std,
    +1e-6) as in VideoMAE. Rows are per channel so every reduction is contiguous.
    """
    x = tubelets.float().unflatten(2, (channels, -1))  # (B, n, C, t*p*p)
    x = torch.addcmul(torch.as_tensor(mean, device=x.device).view(-1, 1), x,
                      torch.as_tensor(std, device=x.device).view(-1, 1))  # back to [0, 1] pixels
    if norm_pix:  # (x - mean) / (unbiased std + 1e-6), in place
        x.sub_(x.mean(dim=-1, keepdim=True))
        std_ = x.square().sum(dim=-1, keepdim=True).div_(x.shape[-1] - 1).sqrt_()
        x.div_(std_.add_(1e-6))
    return x.transpose(-1, -2).flatten(2)


@torch.no_grad()
def pixel_targets(video: torch.Tensor, mean, std, tubelet: int, patch: int, norm_pix: bool = True) -> torch.Tensor:
    """Every token's regression target (B, N, tubelet*patch*patch*C) in float32, written as VideoMAE states it
    (the reference that `tubelet_targets`, the training path, is tested against)."""
    x = patchify(unnormalise(video, mean, std), tubelet, patch)
    if norm_pix:
        x = (x - x.mean(dim=-2, keepdim=True)) / (x.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    return x.flatten(2)


@torch.no_grad()
def coarse_targets(target: torch.Tensor, channels: int, tubelet: int, patch: int, pool: int,
                   norm_pix: bool) -> torch.Tensor:
    """A coarser target in the same layout (B, n, t*p*p*C): every pool x pool cell of each frame of a tubelet
    replaced by its mean, then (with `norm_pix`) standardised again per tubelet and channel, so it is the
    normalised-pixel target of the tubelet seen at 1/pool of the resolution, repeated back to full size."""
    b, n, _ = target.shape
    q = patch // pool
    cells = target.reshape(b, n, tubelet, q, pool, q, pool, channels).mean(dim=(4, 6), keepdim=True)
    if norm_pix:
        flat = cells.view(b, n, -1, channels)
        flat = (flat - flat.mean(dim=-2, keepdim=True)) / (flat.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
        cells = flat.view_as(cells)
    return cells.expand(b, n, tubelet, q, pool, q, pool, channels).reshape(b, n, -1)


def predictions_to_pixels(pred: torch.Tensor, truth: torch.Tensor, channels: int, norm_pix: bool) -> torch.Tensor:
    """The inverse of the target normalisation, for pictures: (B, n, t*p*p*C) predictions -> [0, 1]-scale pixels
    (B, n, t*p*p, C). A normalised prediction takes the true tubelet's (`truth`, pixels in the same layout) mean
    and std, as VideoMAE's visualisations do, so only its pattern is the model's."""
    pred = pred.float().view(*pred.shape[:2], -1, channels)
    if not norm_pix:
        return pred
    truth = truth.view_as(pred)
    return pred * truth.std(dim=-2, unbiased=True, keepdim=True) + truth.mean(dim=-2, keepdim=True)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over hidden tubelets only (pred and target are both hidden-only)."""
    return F.mse_loss(pred.float(), target)
