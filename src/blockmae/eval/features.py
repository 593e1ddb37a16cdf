"""Extract once, measure many times: pooled features and token statistics at every layer.

One pass over a dataset gives, for every layer, the mean over all tokens of the unmasked
clip (the paper's pooled feature) plus the token-level statistics that need whole token
sets (token similarity, relative update norm), so no metric ever re-runs the model.
Block features are the layers at stage ends. For the attentive probe the pass can also keep chosen layers'
whole token sets, as float16, at most `MAX_TOKENS` per clip (`cap_tokens`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .tokens import relative_update_norm, token_similarity

# Tokens kept per clip for the attentive probe: (2000 clips x 256 tokens x 768 wide) float16 is 0.8 GB per layer.
MAX_TOKENS = 256


def cap_tokens(tokens: torch.Tensor, grid: tuple[int, int, int], max_tokens: int = MAX_TOKENS) -> torch.Tensor:
    """(B, N, D) tokens in (t, h, w) order -> at most `max_tokens` per clip: pairs of time steps, then 2x2 spatial
    cells, averaged in turn until they fit (adaptive average pooling, so odd sizes work too). ViT-B at 16x224
    (8x14x14 = 1568 tokens) keeps 4x7x7 = 196."""
    t, h, w = grid
    if t * h * w != tokens.shape[1]:
        raise ValueError(f"{tokens.shape[1]} tokens do not fill the grid {grid}")
    time_next = True
    while t * h * w > max_tokens:
        if (time_next and t > 1) or h * w == 1:
            t = -(-t // 2)
        else:
            h, w = -(-h // 2), -(-w // 2)
        time_next = not time_next
    if (t, h, w) == tuple(grid):
        return tokens
    b, _, d = tokens.shape
    cells = F.adaptive_avg_pool3d(tokens.transpose(1, 2).reshape(b, d, *grid), (t, h, w))
    return cells.reshape(b, d, -1).transpose(1, 2)


@dataclass
class Features:
    layers: list[np.ndarray]  # pooled (n, D) float32, one per layer
    labels: np.ndarray  # (n, n_targets) int64
    target_names: list[str]
    token_similarity: list[float] = field(default_factory=list)  # per layer, mean over clips
    update_norm: list[float] = field(default_factory=list)  # per layer: vs the layer before (layer 1: vs embedding)
    key: str = ""  # identifies the extraction (model, data, split) for memoising metrics
    left_out: list[str] = field(default_factory=list)  # unreadable clips left out ("PATH: reason (detail)")
    tokens: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> (n, <=MAX_TOKENS, D) float16, if kept
    # (n,) int64: the source video (group) of each clip when several clips may share one; cross-validation keeps a
    # group on one side of each fold (eval.protocols.probe_folds). None: every clip is its own video.
    groups: np.ndarray | None = None

    def blocks(self, partition: list[int]) -> list[np.ndarray]:
        ends = np.cumsum(partition)
        return [self.layers[e - 1] for e in ends]

    def save(self, path: Path, partition: list[int]) -> None:
        """npz with `layer_i`, `block_k`, `y`, `target_names` (and token statistics)."""
        arrays = {f"layer_{i}": x for i, x in enumerate(self.layers, start=1)}
        arrays |= {f"block_{k}": x for k, x in enumerate(self.blocks(partition), start=1)}
        np.savez(path, **arrays, y=self.labels, target_names=np.array(self.target_names),
                 token_similarity=np.array(self.token_similarity), update_norm=np.array(self.update_norm),
                 partition=np.array(partition), left_out=np.array(self.left_out, dtype=str),
                 **({"groups": self.groups} if self.groups is not None else {}))

    @classmethod
    def merge(cls, shards: list["Features"]) -> "Features":
        """Features of consecutive shards of one dataset, in order, as if extracted in one pass."""
        n = np.array([len(f.labels) for f in shards], dtype=np.float64)

        def mean(lists):
            return (np.array(lists) * n[:, None]).sum(axis=0) / n.sum() if lists[0] else np.array([])
        return cls([np.concatenate(xs) for xs in zip(*(f.layers for f in shards))],
                   np.concatenate([f.labels for f in shards]), shards[0].target_names,
                   mean([f.token_similarity for f in shards]).tolist(), mean([f.update_norm for f in shards]).tolist(),
                   left_out=[s for f in shards for s in f.left_out],
                   tokens={i: np.concatenate([f.tokens[i] for f in shards]) for i in shards[0].tokens},
                   groups=(np.concatenate([f.groups for f in shards]) if shards[0].groups is not None else None))

    @classmethod
    def load(cls, path: Path, key: str = "") -> "Features":
        with np.load(path) as z:
            n = sum(1 for k in z.files if k.startswith("layer_"))
            return cls([z[f"layer_{i}"] for i in range(1, n + 1)], z["y"], [str(t) for t in z["target_names"]],
                       z["token_similarity"].tolist(), z["update_norm"].tolist(), key,
                       [str(s) for s in z["left_out"]] if "left_out" in z.files else [],
                       groups=z["groups"] if "groups" in z.files else None)

    def save_tokens(self, path: Path) -> None:
        """The kept token sets, apart from the pooled features (whose file format stays as it is)."""
        np.savez(path, **{f"layer_{i}": x for i, x in self.tokens.items()}, max_tokens=MAX_TOKENS)

    @staticmethod
    def load_tokens(path: Path, layers: Iterable[int]) -> dict[int, np.ndarray] | None:
        """These layers' token sets, or None when the file is missing, lacks one or was kept under another cap."""
        if not Path(path).is_file():
            return None
        layers = list(layers)
        with np.load(path) as z:
            names = [f"layer_{i}" for i in layers]
            if "max_tokens" not in z.files or int(z["max_tokens"]) != MAX_TOKENS or not set(names) <= set(z.files):
                return None
            return {i: z[name] for i, name in zip(layers, names)}


@torch.no_grad()
def extract_features(model, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], prepare: Callable[[torch.Tensor], torch.Tensor],
                     target_names: list[str], *, total: int | None = None, token_stats: bool = True,
                     progress: bool = True, desc: str = "features", keep_tokens: Iterable[int] = (),
                     on_batch: Callable[[int, float], None] | None = None) -> Features:
    """Walk `model.token_states` over every batch of uint8 clips (after `prepare`) in eval mode, measuring each
    layer's tokens and letting them go before the next layer runs, so memory holds one batch's input and two
    layers' tokens, not every layer's. The token sets of the layers (1 = first) in `keep_tokens` are kept too,
    capped by `cap_tokens` over `model.grid`.

    The bar counts clips and moves as each layer of a batch finishes (a batch of b clips through L layers moves it
    b/L clips at a time). `on_batch(clips, seconds)` hears of every batch encoded (the cost estimate)."""
    was_training = model.training
    model.eval()
    depth = sum(model.partition)
    pooled: list[list[np.ndarray]] = [[] for _ in range(depth)]
    sims, updates = np.zeros(depth), np.zeros(depth)
    labels, seen = [], 0
    kept: dict[int, list[np.ndarray]] = {i: [] for i in keep_tokens}
    bar = tqdm(total=total, desc=desc, disable=not progress, unit="clip", dynamic_ncols=True)
    for clips, y in batches:
        started = time.perf_counter()
        video = prepare(clips)
        b = video.shape[0]
        states = model.token_states(video)
        previous = next(states).float()  # the embedding: layer 1's update norm is measured against it
        for i, tokens in enumerate(states):
            tokens = tokens.float()
            pooled[i].append(tokens.mean(dim=1).cpu().numpy())
            if i + 1 in kept:
                kept[i + 1].append(cap_tokens(tokens, model.grid).half().cpu().numpy())
            if token_stats:
                sims[i] += token_similarity(tokens) * b
                updates[i] += relative_update_norm(previous, tokens) * b
            previous = tokens
            bar.update(b * (i + 1) // depth - b * i // depth)
        del video, states, previous, tokens  # this batch's tensors go before the next batch is encoded
        labels.append(y.numpy())
        seen += b
        if on_batch is not None:
            on_batch(b, time.perf_counter() - started)
    bar.close()
    model.train(was_training)
    if not seen:
        raise ValueError("no clips to extract features from (empty dataset)")
    return Features([np.concatenate(p) for p in pooled], np.concatenate(labels), list(target_names),
                    (sims / seen).tolist() if token_stats else [], (updates / seen).tolist() if token_stats else [],
                    tokens={i: np.concatenate(x) for i, x in kept.items()})
