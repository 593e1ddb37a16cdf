"""`blockmae analyze`: every depth-wise metric for every source and dataset, as tidy rows.

Features are extracted once per (source, dataset, split[, occlusion]) and cached on disk
(keyed by the checkpoint file, the data spec and the clip shape); every metric reads them.
Under torchrun (`extraction_workers`), rank 0 runs the analysis and every rank extracts a
shard of each feature set, gathered in order (docs/distributed.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedKFold
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ..data import SkipCorrupt, available_datasets, build_dataset, collate, parse_spec
from ..data.transforms import to_model_input
from ..eval import (cka_matrix, gallery_retrieval, geometry_metrics, knn_classify, linear_cka, loo_retrieval_targets,
                    occlude, occlusion_drop, occlusion_mask, probe_targets, rbf_cka, torch_linear_probe)
from ..eval.features import Features, extract_features
from ..eval.reconstruction import MASK_SEED, held_out_losses
from .reconstructions import reconstruction_samples
from .sources import Source

PROTOCOL = {
    "features": "Mean over all tokens of the unmasked clip at every layer output (blocks = the layers at stage ends), "
                "model in eval mode, no gradient.",
    "probe_acc": "Linear probe: standardise, multinomial logistic regression (L-BFGS, 1000 iterations), one probe per "
                 "target; fit on train and score top-1 on test where the data has both splits, else 3-fold stratified "
                 "CV (shuffled, seed 0, stratified on the first target). 'mean' = mean over targets.",
    "knn_acc": "Weighted kNN classifier on L2-normalised features (k=20, temperature 0.07), train -> test.",
    "retrieval_map": "Leave-one-out retrieval (paper): cosine similarity among evaluation clips, self excluded; "
                     "mAP over queries. retrieval_r@k: share of queries with a same-class clip among the k nearest.",
    "gallery_r@k": "Video-SSL retrieval: test queries against the train gallery, cosine; R@1/5/10/20/50.",
    "recon_loss": "Per-stage masked-reconstruction MSE on held-out clips under fixed tube masks (E2E: its monitors).",
    "clips_left_out": "Unreadable clips of the split, left out of every metric (each readable clip is used exactly "
                      "once; nothing is substituted); `files` names up to 20.",
    "recon_loss_zero": "Baseline: the MSE of predicting 0 for every hidden tubelet (same clips and masks as recon_loss).",
    "recon_loss_position_mean": "Baseline: the MSE of predicting each token position's mean target over the evaluated "
                                "clips (a lookup table; same clips and masks).",
    "recon_loss_visible_mean": "Baseline: the MSE of predicting every hidden tubelet as the mean of the clip's visible "
                               "ones (a copy; same clips and masks).",
    "cka_linear": "Linear CKA between pooled features (consecutive blocks: block, block2=block+1; layer x layer "
                  "within a run; block x block across runs: run2).",
    "cka_rbf": "RBF CKA, Gaussian kernel with median-distance bandwidth, consecutive blocks (at most 2048 clips).",
    "token_similarity": "Layer-normalise each token (no affine), L2-normalise, mean cosine over pairs of distinct "
                        "tokens within a clip, averaged over clips.",
    "update_norm": "Relative update norm ||x_l - x_(l-1)|| / ||x_(l-1)|| per token, averaged (layer 1: vs embedding).",
    "occlusion_drop": "(acc_full - acc_one_patch) / acc_full: probe fitted on full clips, scored on clips that keep a "
                      "single random 16x16 patch (same place in every frame, rest black; two patches, one per half, "
                      "for gratings2).",
    "geometry": "Per block on evaluation features: norms, sampled pairwise cosine/distance, effective rank, "
                "participation ratio, isotropy ratio, explained-variance k@90%, condition number, uniformity.",
}


@dataclass
class Options:
    batch_size: int = 64
    num_workers: int = 0
    layers: bool = True  # probes and CKA per layer too, not only per block
    occlusion: bool = True
    dynamics: bool = False  # metrics at every saved checkpoint of run directories
    save_features: bool = False
    recon_clips: int = 256
    samples: int = 2  # clips per source in the reconstruction figure
    device: str = "auto"
    probe: str = "sklearn"  # sklearn (the authors' protocol) | torch (all layers at once, GPU when present)
    strict: bool = False  # an unreadable evaluation clip is an error instead of being left out
    progress: bool = True
    timings: dict = field(default_factory=lambda: defaultdict(float))


class Timer:
    def __init__(self, timings: dict, family: str):
        self.timings, self.family = timings, family

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.family] += time.perf_counter() - self.start


def dataset_splits(spec: str) -> list[str] | None:
    """The splits a dataset has (None: a single set, evaluated by cross-validation)."""
    name = parse_spec(spec)[0].split(":")[0]
    for info in available_datasets():
        if info["name"].split(":")[0] == name:
            return info.get("splits")
    return None


def _dataset_name(spec: str) -> str:
    return parse_spec(spec)[0].split(":")[0]


def _cache_key(source: Source, spec: str, split: str, occluded: bool, cfg) -> str:
    weights = Path(source.path)
    stamp = "random" if source.regime == "random" else str(sorted(
        (str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in weights.rglob("*.safetensors")))
    text = json.dumps([source.path, source.seed, stamp, spec, split, occluded, cfg.frames, cfg.image_size,
                       list(cfg.pixel_mean), list(cfg.pixel_std)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Analysis:
    def __init__(self, out: Path, options: Options):
        self.out, self.opt = Path(out), options
        self.device = torch.device("cuda" if options.device == "auto" and torch.cuda.is_available()
                                   else ("cpu" if options.device == "auto" else options.device))
        self.rows: list[dict] = []
        self.samples: list[dict] = []
        self.pooled: dict[tuple[str, str], list[np.ndarray]] = {}  # (run, dataset) -> block features, for cross-run CKA
        self._probes: dict[tuple, dict[str, float]] = {}  # (test key, train key, kind, index) -> accuracies
        self._said: set[tuple[str, str]] = set()  # (dataset, split) whose left-out clips were reported

    # ------------------------------------------------------------------ rows
    def add(self, meta: dict, dataset: str, split: str | None, metric: str, value: float, *, block=None, layer=None,
            target="mean", step=None, **extra) -> None:
        self.rows.append({**meta, "dataset": dataset, "split": split, "block": block, "layer": layer,
                          "metric": metric, "target": target, "value": float(value), "step": step, **extra})

    # ------------------------------------------------------------------ features
    def features(self, source: Source, model, spec: str, split: str, occluded: bool = False) -> Features:
        cfg = model.cfg
        path = self.out / "cache" / f"{_cache_key(source, spec, split, occluded, cfg)}.npz"
        if path.exists():
            return Features.load(path, key=path.stem)
        with Timer(self.opt.timings, "extraction"):
            world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
            if world > 1:  # the workers of `extraction_workers` extract the other shards
                dist.broadcast_object_list([(source, spec, split, occluded)], src=0)
            feats = self._extract(source, model, spec, split, occluded, 0, world)
            if world > 1:
                shards = [None] * world
                dist.gather_object(feats, shards, dst=0)
                feats = Features.merge([f for f in shards if f is not None])
        path.parent.mkdir(parents=True, exist_ok=True)
        feats.save(path, model.partition)
        if self.opt.save_features and not occluded:
            target = self.out / "features" / f"{source.run}_{_dataset_name(spec)}_{split}.npz"
            target.parent.mkdir(parents=True, exist_ok=True)
            feats.save(target, model.partition)
        feats.key = path.stem
        return feats

    def _extract(self, source: Source, model, spec: str, split: str, occluded: bool, rank: int = 0,
                 world: int = 1) -> Features | None:
        """Features of shard `rank` of `world`: a run of whole batches, so every clip sees the batch (and occlusion
        mask) it would see in one pass. None for an empty shard."""
        cfg = model.cfg
        dataset = self._dataset(spec, split, cfg)
        size = self.opt.batch_size
        n_batches = -(-len(dataset) // size)
        first, end = rank * n_batches // world, (rank + 1) * n_batches // world
        shard = dataset if world == 1 else Subset(dataset, range(first * size, min(end * size, len(dataset))))
        if not len(shard):
            return None
        loader = DataLoader(shard, batch_size=size, num_workers=self.opt.num_workers, collate_fn=collate)
        left_out: list[str] = []

        def readable():
            for clips, y, skipped in loader:
                left_out.extend(skipped)
                if clips is not None:
                    yield clips, y
        batches = readable()
        if occluded:
            regions = 2 if _dataset_name(spec) == "gratings2" else 1
            gen = torch.Generator().manual_seed(0)
            patch = min(16, cfg.image_size // regions)  # the paper's 16 px, or what fits a small clip

            def hide(clips):
                return occlude(clips, occlusion_mask(clips.shape[0], clips.shape[2], clips.shape[3], patch=patch,
                                                     regions=regions, generator=gen))
            for _ in range(first):  # the masks of the batches before this shard
                occlusion_mask(size, cfg.image_size, cfg.image_size, patch=patch, regions=regions, generator=gen)
            batches = ((hide(clips), y) for clips, y in readable())

        def prepare(clips):
            return to_model_input(clips.to(self.device), cfg.pixel_mean, cfg.pixel_std)

        feats = extract_features(model.to(self.device), batches, prepare, dataset.target_names, total=len(shard),
                                 token_stats=not occluded, progress=self.opt.progress and rank == 0,
                                 desc=f"{source.run} {spec} {split}{' occluded' if occluded else ''}")
        feats.left_out = left_out
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
            source, spec, split, occluded = request[0]
            key = (source.path, source.regime, source.seed)
            if key not in models:
                models = {key: source.model().to(self.device)}
            dist.gather_object(self._extract(source, models[key], spec, split, occluded, rank, world), None, dst=0)

    def _dataset(self, spec: str, split: str, cfg):
        """Evaluation clips at the model's shape; an unreadable video is left out (never replaced by another clip:
        that would change the numbers), counted and named, or with `strict` an error."""
        return SkipCorrupt(build_dataset(spec, split, frames=cfg.frames, image_size=cfg.image_size,
                                         channels=cfg.channels, seed=0), strict=self.opt.strict, replace=False)

    def _say_left_out(self, name: str, split: str, left_out: list[str]) -> None:
        """Once per dataset and split (every source reads the same clips)."""
        if (name, split) in self._said:
            return
        self._said.add((name, split))
        tqdm.write(f"analyze: left out {len(left_out)} unreadable clip(s) of {name} ({split}); every other clip is "
                   f"used once: " + "; ".join(left_out[:5]) + (" ..." if len(left_out) > 5 else ""))

    # ------------------------------------------------------------------ one source on one dataset
    def run(self, source: Source, spec: str) -> None:
        model = source.model().to(self.device)
        meta = source.meta()
        name = _dataset_name(spec)
        splits = dataset_splits(spec)
        two_splits = bool(splits) and {"train", "test"} <= set(splits)
        evaluation = "test" if two_splits else (splits[0] if splits else "train")
        test = self.features(source, model, spec, evaluation)
        train = self.features(source, model, spec, "train") if two_splits else None
        split = "test" if two_splits else None
        for part, feats in ((evaluation, test), ("train", train)):
            if feats is not None and feats.left_out:
                self.add(meta, name, part, "clips_left_out", len(feats.left_out), files=feats.left_out[:20])
                self._say_left_out(name, part, feats.left_out)
        labelled = test.labels.shape[1] > 0
        partition = model.partition
        blocks_test = test.blocks(partition)
        self.pooled[(source.run, spec)] = blocks_test

        with Timer(self.opt.timings, "probe"):
            if labelled:
                units = [("block", k) for k in range(1, len(partition) + 1)]
                units += [("layer", i) for i in range(1, len(test.layers) + 1)] if self.opt.layers else []
                for kind, index in units:
                    accs = self._probe(test, train, kind, index, partition)
                    for target, acc in accs.items():
                        self.add(meta, name, split, "probe_acc", acc, target=target, **{kind: index})

        with Timer(self.opt.timings, "retrieval"):
            if labelled:
                names = test.target_names
                for k, x in enumerate(blocks_test, 1):
                    for target, result in loo_retrieval_targets(x, test.labels, names).items():
                        for key, value in result.items():
                            self.add(meta, name, split, "retrieval_map" if key == "map" else f"retrieval_{key}", value,
                                     block=k, target=target)
                    if train is None:
                        continue
                    xt = train.blocks(partition)[k - 1]
                    for t, target in enumerate(names):
                        self.add(meta, name, split, "knn_acc", knn_classify(xt, train.labels[:, t], x, test.labels[:, t]),
                                 block=k, target=target)
                        for key, value in gallery_retrieval(x, test.labels[:, t], xt, train.labels[:, t]).items():
                            self.add(meta, name, split, f"gallery_{key}", value, block=k, target=target)

        with Timer(self.opt.timings, "cka"):
            for k in range(len(blocks_test) - 1):
                a, b = blocks_test[k], blocks_test[k + 1]
                self.add(meta, name, split, "cka_linear", linear_cka(a, b), block=k + 1, block2=k + 2)
                sub = np.random.default_rng(0).permutation(len(a))[:2048]
                self.add(meta, name, split, "cka_rbf", rbf_cka(a[sub], b[sub]), block=k + 1, block2=k + 2)
            if self.opt.layers:
                matrix = cka_matrix(test.layers, None, kind="linear")
                for i in range(len(test.layers)):
                    for j in range(len(test.layers)):
                        self.add(meta, name, split, "cka_linear", matrix[i, j], layer=i + 1, layer2=j + 1)

        with Timer(self.opt.timings, "tokens+geometry"):
            for i, (sim, upd) in enumerate(zip(test.token_similarity, test.update_norm), 1):
                self.add(meta, name, split, "token_similarity", sim, layer=i)
                self.add(meta, name, split, "update_norm", upd, layer=i)
            ends = np.cumsum(partition)
            for k, e in enumerate(ends, 1):  # block rows too, so depth plots by block need no layer maths
                self.add(meta, name, split, "token_similarity", test.token_similarity[e - 1], block=k)
            for k, x in enumerate(blocks_test, 1):
                for metric, value in geometry_metrics(x, seed=0).items():
                    self.add(meta, name, split, metric, value, block=k)

        if self.opt.occlusion and labelled:
            # As the authors: probes refit on occluded clips (train and test alike), compared with full clips.
            occ_test = self.features(source, model, spec, evaluation, occluded=True)
            occ_train = self.features(source, model, spec, "train", occluded=True) if two_splits else None
            with Timer(self.opt.timings, "occlusion"):
                for k in range(1, len(partition) + 1):
                    full = self._probe(test, train, "block", k, partition)
                    part = self._probe(occ_test, occ_train, "block", k, partition)
                    for target in full:
                        self.add(meta, name, split, "occlusion_drop", occlusion_drop(full[target], part[target]),
                                 block=k, target=target)

        with Timer(self.opt.timings, "recon"):
            self._recon(source, model, spec, meta, name, evaluation, split)

        if self.opt.dynamics and source.run_dir is not None:
            with Timer(self.opt.timings, "dynamics"):
                self._dynamics(source, spec, meta, name, evaluation, split, two_splits)

    # ------------------------------------------------------------------ pieces
    def _probe(self, test: Features, train: Features | None, kind: str, index: int, partition,
               all_units: bool = True) -> dict[str, float]:
        """{target: accuracy, "mean": ...}: train -> test when there is a train split, else 3-fold CV.

        The first request probes every unit (layer, or block with --blocks-only) of these features
        in one go; later ones (occlusion, the figures' block view) read the memo.
        """
        key = (test.key, train.key if train is not None else None, kind, index)
        if key not in self._probes and not all_units:
            x = (lambda f: f.blocks(partition)[index - 1]) if kind == "block" else (lambda f: f.layers[index - 1])
            self._probes[key] = (probe_targets(x(train), train.labels, test.target_names, test_x=x(test), test_y=test.labels)
                                 if train is not None else probe_targets(x(test), test.labels, test.target_names))
        if key not in self._probes:
            (self._torch_probes if self.opt.probe == "torch" else self._sklearn_probes)(test, train, partition)
            if self.opt.layers:  # a block's features are its last layer's: share the probe
                for k, end in enumerate(np.cumsum(partition), 1):
                    self._probes[key[:2] + ("block", k)] = self._probes[key[:2] + ("layer", int(end))]
        return self._probes[key]

    def _units(self, f: Features, partition, rows=slice(None)) -> dict[tuple[str, int], np.ndarray]:
        if self.opt.layers:
            return {("layer", i): x[rows] for i, x in enumerate(f.layers, 1)}
        return {("block", k): x[rows] for k, x in enumerate(f.blocks(partition), 1)}

    def _sklearn_probes(self, test: Features, train: Features | None, partition) -> None:
        """Every block and layer probed with scikit-learn, the units spread over the CPU cores."""
        units = self._units(test, partition)
        train_units = self._units(train, partition) if train is not None else {}

        def one(unit):
            if train is not None:
                return probe_targets(train_units[unit], train.labels, test.target_names,
                                     test_x=units[unit], test_y=test.labels)
            return probe_targets(units[unit], test.labels, test.target_names)

        results = Parallel(n_jobs=min(len(units), os.cpu_count() or 1), prefer="processes")(
            delayed(one)(unit) for unit in units)
        for (kind, index), accs in zip(units, results):
            self._probes[(test.key, train.key if train is not None else None, kind, index)] = accs

    def _torch_probes(self, test: Features, train: Features | None, partition) -> None:
        """Every block and layer probed in one batched L-BFGS per target (and fold), same objective as sklearn."""
        def units(f: Features, rows=slice(None)):
            return self._units(f, partition, rows)

        accs: dict[tuple, list[float]] = defaultdict(list)
        for t in range(test.labels.shape[1]):
            if train is not None:
                result = torch_linear_probe(units(train), train.labels[:, t], units(test), test.labels[:, t])
            else:
                folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(test.labels, test.labels[:, 0])
                per_fold = [torch_linear_probe(units(test, tr), test.labels[tr, t], units(test, te), test.labels[te, t])
                            for tr, te in folds]
                result = {unit: float(np.mean([r[unit] for r in per_fold])) for unit in per_fold[0]}
            for unit, acc in result.items():
                accs[unit].append(acc)
        for (kind, index), values in accs.items():
            key = (test.key, train.key if train is not None else None, kind, index)
            self._probes[key] = dict(zip(test.target_names, values)) | {"mean": float(np.mean(values))}

    @torch.no_grad()
    def _recon(self, source, model, spec, meta, name, evaluation, split, step=None) -> None:
        cfg = model.cfg
        dataset = self._dataset(spec, evaluation, cfg)
        n = min(len(dataset), self.opt.recon_clips)
        batch = min(self.opt.batch_size, n)
        config = source.config.get("mask", {})
        kind, ratio = config.get("kind", "tube"), config.get("ratio", 0.9)

        def videos():
            for start in range(0, n - batch + 1, batch):
                clips, _, _ = collate([dataset[j] for j in range(start, start + batch)])
                if clips is not None:  # unreadable clips are left out
                    yield to_model_input(clips.to(self.device), cfg.pixel_mean, cfg.pixel_std)

        result = held_out_losses(model, videos, kind, ratio)
        for k, value in enumerate(result["losses"], 1):
            self.add(meta, name, split, "recon_loss", value, block=k, step=step)
        for key, value in result["baselines"].items():
            self.add(meta, name, split, f"recon_loss_{key}", value, step=step)
        if self.opt.samples and step is None:
            video = next(iter(videos()))[: self.opt.samples]
            mask = model.make_mask(batch, torch.Generator().manual_seed(MASK_SEED), kind, ratio)[: self.opt.samples]
            self.samples += reconstruction_samples(model.cpu(), video.cpu(), mask, f"{source.run} ({name})")
            model.to(self.device)

    def _dynamics(self, source, spec, meta, name, evaluation, split, two_splits) -> None:
        """Final-block probe (mean over targets), retrieval mAP and recon loss at every saved checkpoint."""
        for step, model in source.checkpoints():
            model.to(self.device)
            ckpt_source = Source(f"{source.run}@{step}", str(source.run_dir / "checkpoints" / str(step)), source.regime,
                                 source.model_name, source.K, source.seed, source.config)
            test = self.features(ckpt_source, model, spec, evaluation)
            train = self.features(ckpt_source, model, spec, "train") if two_splits else None
            if test.labels.shape[1]:
                k = model.num_stages
                accs = self._probe(test, train, "block", k, model.partition, all_units=False)
                self.add(meta, name, split, "probe_acc", accs["mean"], block=k, step=step)
                maps = loo_retrieval_targets(test.blocks(model.partition)[-1], test.labels, test.target_names)
                self.add(meta, name, split, "retrieval_map", maps["mean"]["map"], block=k, step=step)
            self._recon(source, model, spec, meta, name, evaluation, split, step=step)

    def cross_run_cka(self) -> None:
        """Block x block linear CKA between every pair of runs on the same dataset (same clips)."""
        with Timer(self.opt.timings, "cka"):
            keys = sorted(self.pooled)
            for i, (run_a, spec_a) in enumerate(keys):
                for run_b, spec_b in keys[i + 1:]:
                    a, b = self.pooled[(run_a, spec_a)], self.pooled[(run_b, spec_b)]
                    if spec_a != spec_b or len(a[0]) != len(b[0]):
                        continue
                    matrix = cka_matrix(a, b, kind="linear")
                    meta = next(r for r in self.rows if r["run"] == run_a)
                    meta = {k: meta[k] for k in ("run", "regime", "model", "K", "seed")}
                    for p in range(len(a)):
                        for q in range(len(b)):
                            self.add(meta, _dataset_name(spec_a), None, "cka_linear", matrix[p, q], block=p + 1,
                                     block2=q + 1, run2=run_b)


@contextmanager
def extraction_workers(options: Options):
    """Under torchrun (WORLD_SIZE > 1) every rank extracts a shard of each feature set; rank 0 runs the analysis.

    Yields True where the analysis runs (rank 0, or a single process); the other ranks serve extraction requests
    (`Analysis.serve`) until rank 0 leaves the block, then yield False.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield True
        return
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo")  # requests and features travel as CPU objects; the models run on options.device
    if options.device == "auto" and torch.cuda.is_available():
        options.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    try:
        if dist.get_rank() == 0:
            try:
                yield True
            finally:
                dist.broadcast_object_list([None], src=0)
        else:
            Analysis(Path("."), options).serve()
            yield False
    finally:
        if created:
            dist.destroy_process_group()
