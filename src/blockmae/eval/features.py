"""Extract once, measure many times: pooled features and token statistics at every layer.

One pass over a dataset gives, for every layer, the mean over all tokens of the unmasked
clip (the paper's pooled feature) plus the token-level statistics that need whole token
sets (token similarity, relative update norm), so no metric ever re-runs the model.
Block features are the layers at stage ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from .tokens import relative_update_norm, token_similarity


@dataclass
class Features:
    layers: list[np.ndarray]  # pooled (n, D) float32, one per layer
    labels: np.ndarray  # (n, n_targets) int64
    target_names: list[str]
    token_similarity: list[float] = field(default_factory=list)  # per layer, mean over clips
    update_norm: list[float] = field(default_factory=list)  # per layer: vs the layer before (layer 1: vs embedding)
    key: str = ""  # identifies the extraction (model, data, split) for memoising metrics
    left_out: list[str] = field(default_factory=list)  # unreadable clips left out ("PATH: reason (detail)")

    def blocks(self, partition: list[int]) -> list[np.ndarray]:
        ends = np.cumsum(partition)
        return [self.layers[e - 1] for e in ends]

    def save(self, path: Path, partition: list[int]) -> None:
        """npz with `layer_i`, `block_k`, `y`, `target_names` (and token statistics)."""
        arrays = {f"layer_{i}": x for i, x in enumerate(self.layers, start=1)}
        arrays |= {f"block_{k}": x for k, x in enumerate(self.blocks(partition), start=1)}
        np.savez(path, **arrays, y=self.labels, target_names=np.array(self.target_names),
                 token_similarity=np.array(self.token_similarity), update_norm=np.array(self.update_norm),
                 partition=np.array(partition), left_out=np.array(self.left_out, dtype=str))

    @classmethod
    def merge(cls, shards: list["Features"]) -> "Features":
        """Features of consecutive shards of one dataset, in order, as if extracted in one pass."""
        n = np.array([len(f.labels) for f in shards], dtype=np.float64)

        def mean(lists):
            return (np.array(lists) * n[:, None]).sum(axis=0) / n.sum() if lists[0] else np.array([])
        return cls([np.concatenate(xs) for xs in zip(*(f.layers for f in shards))],
                   np.concatenate([f.labels for f in shards]), shards[0].target_names,
                   mean([f.token_similarity for f in shards]).tolist(), mean([f.update_norm for f in shards]).tolist(),
                   left_out=[s for f in shards for s in f.left_out])

    @classmethod
    def load(cls, path: Path, key: str = "") -> "Features":
        with np.load(path) as z:
            n = sum(1 for k in z.files if k.startswith("layer_"))
            return cls([z[f"layer_{i}"] for i in range(1, n + 1)], z["y"], [str(t) for t in z["target_names"]],
                       z["token_similarity"].tolist(), z["update_norm"].tolist(), key,
                       [str(s) for s in z["left_out"]] if "left_out" in z.files else [])


@torch.no_grad()
def extract_features(model, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], prepare: Callable[[torch.Tensor], torch.Tensor],
                     target_names: list[str], *, total: int | None = None, token_stats: bool = True,
                     progress: bool = True, desc: str = "features") -> Features:
    """Run `model.encode(at='layers')` on every batch of uint8 clips (after `prepare`) in eval mode."""
    was_training = model.training
    model.eval()
    pooled: list[list[np.ndarray]] = []
    labels, sims, updates, seen = [], None, None, 0
    bar = tqdm(total=total, desc=desc, disable=not progress, unit="clip", dynamic_ncols=True)
    for clips, y in batches:
        video = prepare(clips)
        layers = model.encode(video, at="layers")
        if not pooled:
            pooled = [[] for _ in layers]
            sims, updates = np.zeros(len(layers)), np.zeros(len(layers))
        b = video.shape[0]
        previous = model.embed(video) if token_stats else None
        for i, tokens in enumerate(layers):
            pooled[i].append(tokens.float().mean(dim=1).cpu().numpy())
            if token_stats:
                sims[i] += token_similarity(tokens.float()) * b
                updates[i] += relative_update_norm(previous.float(), tokens.float()) * b
                previous = tokens
        labels.append(y.numpy())
        seen += b
        bar.update(b)
    bar.close()
    model.train(was_training)
    if not seen:
        raise ValueError("no clips to extract features from (empty dataset)")
    return Features([np.concatenate(p) for p in pooled], np.concatenate(labels), list(target_names),
                    (sims / seen).tolist() if token_stats else [], (updates / seen).tolist() if token_stats else [])
