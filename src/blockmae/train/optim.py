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


def fused_adamw_available(params) -> bool:
    """Whether PyTorch has a fused AdamW kernel for every parameter (floating point, on a supported device)."""
    try:
        from torch.optim.optimizer import _device_dtype_check_for_fused  # the check AdamW runs at its first step
    except ImportError:  # an older PyTorch: CUDA only
        return all(p.is_cuda and torch.is_floating_point(p) for p in params)
    try:
        for p in params:
            _device_dtype_check_for_fused(p)
    except RuntimeError:
        return False
    return True


def build_optimizer(model: nn.Module, lr: float, weight_decay: float, betas, fused: bool | None = None
                    ) -> torch.optim.AdamW:
    """AdamW over `param_groups`. `fused` (default: wherever PyTorch has the kernel for the parameters, CPU and
    CUDA) runs the whole update as one kernel instead of a Python loop over parameters: the same update to
    float rounding (tests/train), and faster (docs/performance.md). `fused=False`: PyTorch's default
    implementation (a loop over parameters on CPU)."""
    groups = param_groups(model, weight_decay)
    if fused is None:
        fused = fused_adamw_available([p for g in groups for p in g["params"]])
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=bool(fused) or None)


def effective_lr(base_lr: float, global_batch: int) -> float:
    """The linear scaling rule of MAE/VideoMAE: base LR is for a batch of 256."""
    return base_lr * global_batch / 256


def cosine_lr(step: int, total: int, peak: float, minimum: float, warmup: int) -> float:
    """Linear warm-up from 0 to `peak` over `warmup` steps, then cosine decay to `minimum` at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return minimum + (peak - minimum) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
