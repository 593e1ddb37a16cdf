"""AdamW parameter groups and the warm-up + cosine learning-rate schedule (a pure function of the step)."""

from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on norms, biases and embeddings (mask tokens), as in MAE/VideoMAE."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith("mask_token") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, betas) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=tuple(betas))


def effective_lr(base_lr: float, global_batch: int) -> float:
    """The linear scaling rule of MAE/VideoMAE: base LR is for a batch of 256."""
    return base_lr * global_batch / 256


def cosine_lr(step: int, total: int, peak: float, minimum: float, warmup: int) -> float:
    """Linear warm-up from 0 to `peak` over `warmup` steps, then cosine decay to `minimum` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return minimum + (peak - minimum) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def phase_bounds(total: int, shares: list[float]) -> list[int]:
    """End step (exclusive) of each sequential phase; the last phase ends at `total`."""
    cum, ends = 0.0, []
    for s in shares:
        cum += s
        ends.append(round(total * cum / sum(shares)))
    ends[-1] = total
    return ends
