"""Features for the analysis: extracted once per (source, dataset, split[, occlusion]) and cached on disk, keyed
by the checkpoint files, the data spec and the clip shape.

With `tokens` (the attentive probe) the token sets of the blocks (every layer when layer probes are on) are
kept too, capped at `eval.features.MAX_TOKENS` per clip, and cached beside the pooled features in
`<key>.tokens.npz`; the pooled cache file keeps its format.

Under torchrun (`suite.extraction_workers`) every rank extracts a shard of each feature set, a run of whole
batches, and rank 0 gathers them in order: the result equals one pass (docs/distributed.md).

Where clips of one source video may share a group (`VideoDataset.groups`), each clip's entry index travels with its
labels through the loader, so the features know every clip's group (`Features.groups`) even when unreadable clips
are left out or an item holds several views.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import SkipCorrupt, build_dataset, collate, parse_spec, spec_splits
from ..data.transforms import to_model_input
from ..devices import resolve_device
from ..eval import occlude, occlusion_mask
from ..eval.features import Features, extract_features
from .options import Options, Timer, viewed_partition
from .sources import Source


def dataset_name(spec: str) -> str:
    return parse_spec(spec)[0].split(":")[0]


def dataset_splits(spec: str) -> list[str] | None:
    """The splits this spec's data has as separate clips (None: a single set, evaluated by cross-validation; a list
    spec without a held-out list is a single set read as its "test" pass): `data.spec_splits`."""
    splits = spec_splits(spec)
    return list(splits) if splits is not None else None


class WithIndex(Dataset):
    """Items (clip, labels + [index]): the entry index rides in the labels' last column through `collate`, which
    repeats labels for every view, so each extracted clip knows its entry."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index):
        clip, labels = self.dataset[index]
        return clip, torch.cat([labels, torch.tensor([index], dtype=torch.int64)])


def indexed_batches(loader, left_out: list[str], indices: list[np.ndarray]):
    """(clips, labels) of the readable clips of a loader over `WithIndex` items; the left-out clips' reasons go to
    `left_out` and each batch's entry indices to `indices`."""
    for clips, y, skipped in loader:
        left_out.extend(skipped)
        if clips is not None:
            indices.append(y[:, -1].numpy())
            yield clips, y[:, :-1]


def clip_groups(dataset, indices: list[np.ndarray]) -> np.ndarray | None:
    """The source-video group of every extracted clip (`VideoDataset.groups` at the entry indices that
    `indexed_batches` saw), or None when the data has no groups."""
    groups = dataset.groups() if hasattr(dataset, "groups") else None
    return groups[np.concatenate(indices)] if groups is not None else None


def cache_key(source: Source, spec: str, split: str, occluded: bool, cfg) -> str:
    """Changes when the weights (file times and sizes), the data or the clip shape change."""
    weights = Path(source.path)
    stamp = "random" if source.regime == "random" else str(sorted(
        (str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in weights.rglob("*.safetensors")))
    parts = [source.path, source.seed, stamp, spec, split, occluded, cfg.frames, cfg.image_size,
             list(cfg.pixel_mean), list(cfg.pixel_std)]
    if ":" in parse_spec(spec)[0]:  # video collections' features carry clip groups: not the caches made before them
        parts.append("groups")
    text = json.dumps(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FeatureStore:
    """Pooled features of every layer, from the cache under `out/cache` or extracted (and then cached)."""

    def __init__(self, out: Path, options: Options):
        self.out, self.opt = Path(out), options
        self.device = resolve_device(options.device, "--device")
        self.meter = None  # a `cost.CostMeter` hears of every batch encoded

    def features(self, source: Source, model, spec: str, split: str, occluded: bool = False,
                 tokens: bool = False) -> Features:
        """`tokens`: keep the token sets the attentive probe reads (`token_layers`) as well."""
        cfg = model.cfg
        path = self.out / "cache" / f"{cache_key(source, spec, split, occluded, cfg)}.npz"
        tokens_path = path.with_name(f"{path.stem}.tokens.npz")
        layers = self.token_layers(viewed_partition(self.opt.blocks, model.partition)) if tokens else []
        if path.exists():
            kept = Features.load_tokens(tokens_path, layers) if layers else {}
            if kept is not None:  # else extract again: these token sets were not cached
                feats = Features.load(path, key=path.stem)
                feats.tokens = kept
                return feats
        with Timer(self.opt.timings, "extraction"):
            world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
            if world > 1:  # the workers of `extraction_workers` extract the other shards
                dist.broadcast_object_list([(source, spec, split, occluded, layers)], src=0)
            feats = self.extract(source, model, spec, split, occluded, 0, world, layers)
            if world > 1:
                shards = [None] * world
                dist.gather_object(feats, shards, dst=0)
                feats = Features.merge([f for f in shards if f is not None])
        path.parent.mkdir(parents=True, exist_ok=True)
        partition = viewed_partition(self.opt.blocks, model.partition)
        feats.save(path, partition)
        if layers:
            feats.save_tokens(tokens_path)
        if self.opt.save_features and not occluded:
            target = self.out / "features" / f"{source.run}_{dataset_name(spec)}_{split}.npz"
            target.parent.mkdir(parents=True, exist_ok=True)
            feats.save(target, partition)
        feats.key = path.stem
        return feats

    def token_layers(self, partition: list[int]) -> list[int]:
        """The layers (1 = first) whose tokens the attentive probe reads: every layer when layer probes are on,
        else the blocks' last layers."""
        return list(range(1, sum(partition) + 1)) if self.opt.layers else [int(e) for e in np.cumsum(partition)]

    def extract(self, source: Source, model, spec: str, split: str, occluded: bool, rank: int = 0,
                world: int = 1, token_layers: list[int] = ()) -> Features | None:
        """Features of shard `rank` of `world`: a run of whole batches, so every clip sees the batch (and occlusion
        mask) it would see in one pass. None for an empty shard."""
        cfg = model.cfg
        dataset = self.clips(spec, split, cfg, with_index=True)
        size = self.opt.batch_size
        n_batches = -(-len(dataset) // size)
        first, end = rank * n_batches // world, (rank + 1) * n_batches // world
        shard = dataset if world == 1 else Subset(dataset, range(first * size, min(end * size, len(dataset))))
        if not len(shard):
            return None
        loader = DataLoader(shard, batch_size=size, num_workers=self.opt.num_workers, collate_fn=collate)
        left_out: list[str] = []
        indices: list[np.ndarray] = []
        batches = indexed_batches(loader, left_out, indices)
        if occluded:
            regions = 2 if dataset_name(spec) == "gratings2" else 1
            gen = torch.Generator().manual_seed(0)
            patch = min(16, cfg.image_size // regions)  # the paper's 16 px, or what fits a small clip

            def hide(clips):
                return occlude(clips, occlusion_mask(clips.shape[0], clips.shape[2], clips.shape[3], patch=patch,
                                                     regions=regions, generator=gen))
            for _ in range(first):  # the masks of the batches before this shard
                occlusion_mask(size, cfg.image_size, cfg.image_size, patch=patch, regions=regions, generator=gen)
            batches = ((hide(clips), y) for clips, y in batches)

        def prepare(clips):
            return to_model_input(clips.to(self.device), cfg.pixel_mean, cfg.pixel_std)

        feats = extract_features(model.to(self.device), batches, prepare, dataset.target_names, total=len(shard),
                                 token_stats=not occluded, progress=self.opt.progress and rank == 0,
                                 desc=f"{source.run} {spec} {split}{' occluded' if occluded else ''}",
                                 keep_tokens=token_layers,
                                 on_batch=self.meter.batch_done if self.meter is not None and rank == 0 else None)
        feats.left_out = left_out
        feats.groups = clip_groups(dataset, indices)
        return feats

    def serve(self) -> None:
        """A worker of `extraction_workers`: extract this rank's shard of what rank 0 asks for, until it says stop."""
        rank, world = dist.get_rank(), dist.get_world_size()
        models: dict = {}
        while True:
            request = [None]
            dist.broadcast_object_list(request, src=0)
            if request[0] is None:
                return
            source, spec, split, occluded, token_layers = request[0]
            key = (source.path, source.regime, source.seed)
            if key not in models:
                models = {key: source.model().to(self.device)}
            feats = self.extract(source, models[key], spec, split, occluded, rank, world, token_layers)
            dist.gather_object(feats, None, dst=0)

    def clips(self, spec: str, split: str, cfg, with_index: bool = False):
        """Evaluation clips at the model's shape; an unreadable video is left out (never replaced by another clip:
        that would change the numbers), counted and named, or with `strict` an error. `with_index`: items carry
        their entry index (`WithIndex`)."""
        dataset = build_dataset(spec, split, frames=cfg.frames, image_size=cfg.image_size, channels=cfg.channels,
                                seed=0)
        return SkipCorrupt(WithIndex(dataset) if with_index else dataset, strict=self.opt.strict, replace=False)
