"""Pictures of what each stage's decoder fills in: input, masked input, stage 1..K reconstructions."""

from __future__ import annotations

import numpy as np
import torch

from ..model.masking import gather_tokens, split_indices
from ..model.objective import patchify, predictions_to_pixels, unnormalise, unpatchify


@torch.no_grad()
def reconstruction_samples(model, video: torch.Tensor, mask: torch.Tensor, run: str) -> list[dict]:
    """One dict per clip: arrays (T, H, W, C) in [0, 1] for the figure.

    Visible tubelets are copied from the input; hidden ones come from each stage's decoder, mapped back to
    pixels by `objective.predictions_to_pixels`.
    """
    c = model.cfg
    pixels = unnormalise(video, c.pixel_mean, c.pixel_std).clamp(0, 1)
    tubelets = patchify(pixels, c.tubelet, c.patch)  # (B, N, t*p*p, C)
    _, hidden_idx = split_indices(mask)
    stages = []
    for pred in model.reconstruct(video, mask):
        pred = predictions_to_pixels(pred, gather_tokens(tubelets.flatten(2), hidden_idx), c.channels, c.norm_pix)
        full = tubelets.clone()
        full.scatter_(1, hidden_idx[:, :, None, None].expand_as(pred), pred)
        stages.append(unpatchify(full.flatten(2), c.channels, model.grid, c.tubelet, c.patch).clamp(0, 1))
    masked = tubelets.clone()
    masked[mask] = 0.5  # hidden tubelets shown grey
    masked = unpatchify(masked.flatten(2), c.channels, model.grid, c.tubelet, c.patch)

    def frames(x):  # (B, C, T, H, W) -> (B, T, H, W, C) numpy
        return x.permute(0, 2, 3, 4, 1).cpu().numpy().astype(np.float32)

    inputs, masked, stages = frames(pixels), frames(masked), [frames(s) for s in stages]
    return [{"run": run, "input": inputs[i], "masked": masked[i], "stages": [s[i] for s in stages]}
            for i in range(video.shape[0])]
