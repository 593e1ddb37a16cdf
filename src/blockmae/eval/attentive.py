"""Attentive probe: V-JEPA's frozen-evaluation protocol (Bardes et al. 2024), beside the linear probe on
mean-pooled tokens.

A learned query cross-attends over a unit's frozen output tokens (multi-head; keys and values are linear maps
of the tokens after a LayerNorm) and a linear head reads the attended vector. The linear probe sees only the
mean token; this probe can weight the tokens that carry the label, so it measures what a masked autoencoder's
tokens hold rather than what survives averaging them.

Defaults: 1 query (one vector per clip, like the pooled feature it stands beside); 8 heads (gcd(8, D) when the
width D is not a multiple of 8); 20 epochs of AdamW with cross-entropy (V-JEPA's optimiser and loss), batch 32,
lr 5e-3 with cosine decay to 0, weight decay 0.01: our probe sets hold hundreds to thousands of clips, so a probe
gets hundreds of steps, not the tens of thousands of a Kinetics probe, and at lr 1e-3 it underfitted the tests'
synthetic set.
Seeded: the same seed gives the same probe on the CPU. Cost per step: O(units x batch x tokens x width x heads),
no width^2 term (see below); six 96-wide units of 256 tokens train at about 4 s per epoch of 1333 clips on
one CPU core.

Left out on purpose, because they change nothing the probe can express: the query projection (a learned query
already is any projection of one), the output projection (the linear head absorbs it), the key and value
biases and the LayerNorm's affine (softmax ignores a constant score; weights summing to 1 pass a constant
value to the head's bias). Scores and values are computed as `x . (Wk q)` and `(sum a x) Wv`, the same numbers
as `q . (x Wk)` and `sum a (x Wv)` at a cost linear in the width.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..devices import resolve_device


class AttentiveProbe(nn.Module):
    """`units` independent probes, trained together: tokens (units, B, N, D) -> logits (units, B, classes)."""

    def __init__(self, units: int, dim: int, classes: int, queries: int = 1, heads: int = 8,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.heads = math.gcd(dim, heads)

        def normal(*shape, std):
            return nn.Parameter(torch.randn(*shape, generator=generator) * std)
        self.query = normal(units, queries, dim, std=0.02)  # small: attention starts near the mean over tokens
        self.keys = normal(units, dim, dim, std=dim ** -0.5)
        self.values = normal(units, dim, dim, std=dim ** -0.5)
        self.head = normal(units, queries * dim, classes, std=0.02)
        self.bias = nn.Parameter(torch.zeros(units, 1, classes))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        units, batch, _, dim = tokens.shape
        heads, width = self.heads, dim // self.heads
        x = F.layer_norm(tokens.float(), (dim,))
        query = self.query.view(units, -1, heads, width)
        directions = torch.einsum("uqhe,udhe->uqhd", query, self.keys.view(units, dim, heads, width))
        scores = torch.einsum("ubnd,uqhd->ubqhn", x, directions) / math.sqrt(width)
        pooled = torch.einsum("ubqhn,ubnd->ubqhd", scores.softmax(-1), x)  # each head's weighted mean token
        attended = torch.einsum("ubqhd,udhe->ubqhe", pooled, self.values.view(units, dim, heads, width))
        return torch.baddbmm(self.bias, attended.reshape(units, batch, -1), self.head)


def _batch(arrays: list[np.ndarray], rows: np.ndarray, device) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.asarray(a[rows])) for a in arrays]).to(device, torch.float32)


def attentive_probe(train_tokens: Mapping[object, np.ndarray], train_y, test_tokens: Mapping[object, np.ndarray],
                    test_y, *, queries: int = 1, heads: int = 8, epochs: int = 20, lr: float = 5e-3,
                    weight_decay: float = 0.01, batch_size: int = 32, seed: int = 0, device=None) -> dict:
    """Top-1 test accuracy of one attentive probe per token set ((n, N, D) arrays of the same shape, e.g. every
    block of a model), fitted together on `train_y` and scored on `test_y`. A test class unseen in training
    is never right."""
    keys = list(train_tokens)
    if set(keys) != set(test_tokens):
        raise ValueError(f"train and test token sets differ: {sorted(map(str, set(keys) ^ set(test_tokens)))}")
    train, test = [train_tokens[k] for k in keys], [test_tokens[k] for k in keys]
    shapes = {a.shape[1:] for a in train + test}
    if len(shapes) != 1:
        raise ValueError(f"token sets must share one (tokens, width) shape, got {sorted(shapes)}")
    device = resolve_device(device)
    ytr, yte = np.asarray(train_y, dtype=np.int64), np.asarray(test_y, dtype=np.int64)
    classes = np.unique(ytr)
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    target = torch.as_tensor(np.searchsorted(classes, ytr), device=device)
    truth = torch.as_tensor([lookup.get(c, -1) for c in yte.tolist()], device=device)

    generator = torch.Generator().manual_seed(seed)
    probe = AttentiveProbe(len(keys), train[0].shape[2], len(classes), queries, heads, generator).to(device)
    optimiser = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(ytr) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    for _ in range(epochs):
        order = torch.randperm(len(ytr), generator=generator).numpy()
        for start in range(0, len(ytr), batch_size):
            rows = np.sort(order[start:start + batch_size])  # sorted: numpy gathers them faster
            logits = probe(_batch(train, rows, device))  # (units, B, classes)
            labels = target[torch.as_tensor(rows, device=device)].expand(len(keys), -1)
            loss = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1).sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()

    correct = torch.zeros(len(keys), device=device)
    with torch.no_grad():
        for start in range(0, len(yte), 4 * batch_size):
            rows = np.arange(start, min(start + 4 * batch_size, len(yte)))
            predicted = probe(_batch(test, rows, device)).argmax(-1)
            correct += (predicted == truth[torch.as_tensor(rows, device=device)]).sum(1)
    return {k: float(c) / len(yte) for k, c in zip(keys, correct.tolist())}
