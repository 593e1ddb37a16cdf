"""`blockmae analyze`: every depth-wise metric family for every source and dataset, as tidy rows
(`analysis.rows`).

Features come from `extraction.FeatureStore` (extracted once, cached); each family reads them: probes
(linear, and with `attentive` the attentive probe on the kept token sets), retrieval and kNN, CKA (plain and
debiased), mutual-kNN alignment and intrinsic dimension (`depth_similarity`), token statistics and geometry,
occlusion, held-out reconstruction, and, with `dynamics`, the final block at every saved checkpoint. Which split
probes are fitted on and scored on is `eval.protocols.split_plan`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..data.batches import model_batches
from ..devices import resolve_device
from ..eval import (SplitPlan, cka_matrix, gallery_retrieval, geometry_metrics, knn_classify, loo_retrieval_targets,
                    occlusion_drop, probe_folds, split_plan)
from ..eval.features import MAX_TOKENS, Features
from ..eval.protocols import chance_accuracies
from ..eval.reconstruction import MASK_SEED, held_out_losses
from .depth_similarity import DEBIASED_MIN_CLIPS, KNN_K, MAX_CLIPS, cka_entries, neighbour_entries
from .extraction import FeatureStore, dataset_name, dataset_splits
from .options import Options, Timer, viewed_partition
from .probes import Probes
from .reconstructions import reconstruction_samples
from .rows import RUN_KEYS, make_row
from .sources import Source

# metric -> how it is measured: the report's "Protocol of every number"
PROTOCOL = {
    "features": "Mean over all tokens of the unmasked clip at every layer output (blocks = the layers at stage ends, or "
                "at the ends of the blocks --blocks gives), model in eval mode, no gradient.",
    "probe_acc": "Linear probe: standardise, multinomial logistic regression (L-BFGS, 1000 iterations), one probe per "
                 "target; fit on train and score top-1 on test where the data has separate train and test clips "
                 "(the official splits of UCF101/HMDB51/Kinetics/SSv2; a list: spec only with a held-out test= or "
                 "val= list), else 3-fold stratified CV (shuffled, seed 0, stratified on the first target) over the "
                 "one set: the gratings, or a list of your own videos, whose folds are grouped by source video "
                 "(StratifiedGroupKFold: UCF101-style v_X_gNN_cMM names share group gNN, views of a video share its "
                 "group) so no video is on both sides of a fold. 'mean' = mean over targets.",
    "attentive_probe_acc": "Attentive probe (V-JEPA's frozen evaluation), one per target and unit: the unit's output "
                           "tokens, kept as float16 and averaged over time pairs and 2x2 spatial cells in turn until "
                           f"at most {MAX_TOKENS} per clip, are layer-normalised (no affine); one learned query "
                           "attends over them with 8 heads (gcd(8, width) if the width is no multiple of 8), scores "
                           "q.k/sqrt(head width) against learned key maps, softmax-weighted learned value maps; a "
                           "linear head reads the attended vector. AdamW (lr 5e-3, cosine to 0, weight decay 0.01), "
                           "cross-entropy, batch 32, 20 epochs, seed 0; top-1 on the same splits and folds as "
                           "probe_acc. 'mean' = mean over targets.",
    "knn_acc": "Weighted kNN classifier on L2-normalised features (k=20, temperature 0.07), train -> test where "
               "the data has separate train and test clips, else the mean over the linear probe's folds (the same "
               "grouped folds).",
    "retrieval_map": "Leave-one-out retrieval (paper): cosine similarity among evaluation clips, self excluded (for "
                     "cross-validated data with source-video groups, the query's whole group); mAP over queries. "
                     "retrieval_r@k: share of queries with a same-class clip among the k nearest.",
    "gallery_r@k": "Video-SSL retrieval: test queries against the train gallery, cosine; R@1/5/10/20/50 (train -> "
                   "test data only, as knn_acc).",
    "recon_loss": "Per-stage masked-reconstruction MSE on held-out clips under fixed tube masks (E2E: its monitors); "
                  "a model viewed as other blocks (--blocks) has it at the blocks that end where a stage ends.",
    "clips_left_out": "Unreadable clips of the split, left out of every metric (each readable clip is used exactly "
                      "once; nothing is substituted); `files` names up to 20.",
    "recon_loss_zero": "Baseline: the MSE of predicting 0 for every hidden tubelet (same clips and masks as recon_loss).",
    "recon_loss_position_mean": "Baseline: the MSE of predicting each token position's mean target over the evaluated "
                                "clips (a lookup table; same clips and masks).",
    "recon_loss_visible_mean": "Baseline: the MSE of predicting every hidden tubelet as the mean of the clip's visible "
                               "ones (a copy; same clips and masks).",
    "recon_loss_oracle_constant": "Reference, not a baseline: the MSE of predicting every hidden tubelet as the mean "
                                  "of the clip's hidden ones, the best single constant per clip (an oracle: it "
                                  "peeks at the hidden targets; same clips and masks).",
    "chance_acc": "The majority-class share of the scored clips' labels per target (cross-validated data: of the "
                  "whole set), what a probe that ignores the clip scores; 'mean' = mean over targets. One row per "
                  "source (block unset), identical across sources.",
    "cka_linear": "Linear CKA between pooled features (consecutive blocks: block, block2=block+1; layer x layer "
                  "within a run; block x block across runs: run2).",
    "cka_rbf": f"RBF CKA, Gaussian kernel with median-distance bandwidth, consecutive blocks (at most {MAX_CLIPS} "
               "clips).",
    "cka_linear_debiased": "Linear CKA from the unbiased HSIC estimator (Song et al. 2012, as Nguyen et al. 2021), "
                           "which plain CKA's small-sample inflation does not affect; the same pairs as cka_linear "
                           f"(at least {DEBIASED_MIN_CLIPS} clips).",
    "cka_rbf_debiased": "RBF CKA from the unbiased HSIC estimator, consecutive blocks, the same clips as cka_rbf.",
    "mutual_knn": f"Mutual k-nearest-neighbour alignment (Huh et al. 2024) between consecutive blocks (block2) and "
                  f"layers (layer2): the mean share of each clip's k={KNN_K} cosine nearest neighbours (itself "
                  f"excluded) that both representations share; chance is about k/(n-1) (at most {MAX_CLIPS} clips, "
                  "as cka_rbf).",
    "twonn_id": "Intrinsic dimension by TwoNN (Facco et al. 2017) per block and layer: (N-1) / sum log(r2/r1), r1, r2 "
                "the Euclidean distances to each clip's two nearest clips, duplicates (r1 = 0) left out (the same "
                "clips as cka_rbf).",
    "token_similarity": "Layer-normalise each token (no affine), L2-normalise, mean cosine over pairs of distinct "
                        "tokens within a clip, averaged over clips.",
    "update_norm": "Relative update norm ||x_l - x_(l-1)|| / ||x_(l-1)|| per token, averaged (layer 1: vs embedding).",
    "occlusion_drop": "(acc_full - acc_one_patch) / acc_full: probe fitted on full clips, scored on clips that keep a "
                      "single random 16x16 patch (same place in every frame, rest black; two patches, one per half, "
                      "for gratings2).",
    "geometry": "Per block on evaluation features: norms, sampled pairwise cosine/distance, effective rank, "
                "participation ratio, isotropy ratio, explained-variance k@90%, condition number, uniformity.",
}


class Analysis:
    """The rows (and reconstruction samples) of every source run on every dataset; features cached under `out`."""

    def __init__(self, out: Path, options: Options):
        self.opt = options
        if options.threads:
            torch.set_num_threads(options.threads)
        self.store = FeatureStore(out, options)
        self.device = self.store.device
        self.probes = Probes(options.probe, options.layers, jobs=options.threads, progress=options.progress)
        self.rows: list[dict] = []
        self.samples: list[dict] = []
        self.pooled: dict[tuple[str, str], list[np.ndarray]] = {}  # (run, dataset) -> block features, for cross-run CKA
        self._said: set[tuple[str, str]] = set()  # (dataset, split) whose left-out clips were reported

    def add(self, run: dict, dataset: str, split: str | None, metric: str, value: float, **where) -> None:
        self.rows.append(make_row(run, dataset, split, metric, value, **where))

    def _say_left_out(self, name: str, split: str, left_out: list[str]) -> None:
        """Once per dataset and split (every source reads the same clips)."""
        if (name, split) in self._said:
            return
        self._said.add((name, split))
        tqdm.write(f"analyze: left out {len(left_out)} unreadable clip(s) of {name} ({split}); every other clip is "
                   f"used once: " + "; ".join(left_out[:5]) + (" ..." if len(left_out) > 5 else ""))

    def run(self, source: Source, spec: str) -> None:
        """Every metric family of one source on one dataset."""
        model = source.model().to(self.device)
        meta = source.meta()
        name = dataset_name(spec)
        plan = split_plan(dataset_splits(spec))
        split = plan.row_split
        tokens = self.opt.attentive
        test = self.store.features(source, model, spec, plan.evaluate, tokens=tokens)
        train = self.store.features(source, model, spec, plan.fit, tokens=tokens) if plan.fit else None
        for part, feats in ((plan.evaluate, test), ("train", train)):
            if feats is not None and feats.left_out:
                self.add(meta, name, part, "clips_left_out", len(feats.left_out), files=feats.left_out[:20])
                self._say_left_out(name, part, feats.left_out)
        labelled = test.labels.shape[1] > 0
        partition = viewed_partition(self.opt.blocks, model.partition)
        blocks_test = test.blocks(partition)
        self.pooled[(source.run, spec)] = blocks_test

        with Timer(self.opt.timings, "probe"):
            if labelled:
                for target, share in chance_accuracies(test.labels, test.target_names).items():
                    self.add(meta, name, split, "chance_acc", share, target=target)
                units = [("block", k) for k in range(1, len(partition) + 1)]
                units += [("layer", i) for i in range(1, len(test.layers) + 1)] if self.opt.layers else []
                for kind, index in units:
                    accs = self.probes.accuracies(test, train, kind, index, partition)
                    for target, acc in accs.items():
                        self.add(meta, name, split, "probe_acc", acc, target=target, **{kind: index})

        if tokens:
            with Timer(self.opt.timings, "attentive probe"):
                if labelled:
                    for (kind, index), accs in self.probes.attentive(test, train, partition, self.device).items():
                        for target, acc in accs.items():
                            self.add(meta, name, split, "attentive_probe_acc", acc, target=target, **{kind: index})
            for feats in (test, train):  # no other family reads the token sets: free them now
                if feats is not None:
                    feats.tokens = {}

        with Timer(self.opt.timings, "retrieval"):
            if labelled:
                self._retrieval(meta, name, split, test, train, partition)

        layers = test.layers if self.opt.layers else None
        with Timer(self.opt.timings, "cka"):
            for metric, value, where in self._bar(cka_entries(blocks_test, layers), "CKA", "value"):
                self.add(meta, name, split, metric, value, **where)
        with Timer(self.opt.timings, "neighbours"):
            for metric, value, where in self._bar(neighbour_entries(blocks_test, layers), "neighbours", "value"):
                self.add(meta, name, split, metric, value, **where)

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
            occ_test = self.store.features(source, model, spec, plan.evaluate, occluded=True)
            occ_train = self.store.features(source, model, spec, plan.fit, occluded=True) if plan.fit else None
            with Timer(self.opt.timings, "occlusion"):
                for k in range(1, len(partition) + 1):
                    full = self.probes.accuracies(test, train, "block", k, partition)
                    part = self.probes.accuracies(occ_test, occ_train, "block", k, partition)
                    for target in full:
                        self.add(meta, name, split, "occlusion_drop", occlusion_drop(full[target], part[target]),
                                 block=k, target=target)

        with Timer(self.opt.timings, "recon"):
            self._recon(source, model, spec, meta, name, plan)

        if self.opt.dynamics and source.run_dir is not None:
            with Timer(self.opt.timings, "dynamics"):
                self._dynamics(source, spec, meta, name, plan)

    def _bar(self, items, desc: str, unit: str, total: int | None = None):
        """A stage's own bar (gone when the stage ends)."""
        return tqdm(items, desc=desc, unit=unit, total=total, disable=not self.opt.progress, dynamic_ncols=True,
                    leave=False)

    def _retrieval(self, meta: dict, name: str, split: str | None, test: Features, train: Features | None,
                   partition) -> None:
        """Leave-one-out retrieval on the scored clips; with a train split, kNN and gallery retrieval against it,
        else kNN over the probes' folds."""
        names = test.target_names
        folds = probe_folds(test.labels[:, 0], groups=test.groups) if train is None else []
        for k, x in enumerate(test.blocks(partition), 1):
            groups = test.groups if train is None else None  # single-set data: a clip's own video is no hit
            for target, result in loo_retrieval_targets(x, test.labels, names, groups=groups).items():
                for key, value in result.items():
                    self.add(meta, name, split, "retrieval_map" if key == "map" else f"retrieval_{key}", value,
                             block=k, target=target)
            if train is None:
                for t, target in enumerate(names):
                    acc = np.mean([knn_classify(x[tr], test.labels[tr, t], x[te], test.labels[te, t])
                                   for tr, te in folds])
                    self.add(meta, name, split, "knn_acc", acc, block=k, target=target)
                continue
            xt = train.blocks(partition)[k - 1]
            for t, target in enumerate(names):
                self.add(meta, name, split, "knn_acc", knn_classify(xt, train.labels[:, t], x, test.labels[:, t]),
                         block=k, target=target)
                for key, value in gallery_retrieval(x, test.labels[:, t], xt, train.labels[:, t]).items():
                    self.add(meta, name, split, f"gallery_{key}", value, block=k, target=target)

    @torch.no_grad()
    def _recon(self, source: Source, model, spec: str, meta: dict, name: str, plan: SplitPlan, step=None) -> None:
        """Per-stage held-out reconstruction loss and the trivial predictors' (and, for final models, the samples
        of the reconstruction figure)."""
        cfg = model.cfg
        dataset = self.store.clips(spec, plan.evaluate, cfg)
        n = min(len(dataset), self.opt.recon_clips)
        batch = min(self.opt.batch_size, n)
        config = source.config.get("mask", {})
        kind, ratio = config.get("kind", "tube"), config.get("ratio", 0.9)

        bar = self._bar(None, "reconstruction", "clip", total=2 * (n // batch * batch))  # two walks: means, scores

        def videos():
            return model_batches(dataset, range(n), batch, self.device, cfg.pixel_mean, cfg.pixel_std, bar.update)

        with bar:
            result = held_out_losses(model, videos, kind, ratio)
        view_ends = [int(e) for e in np.cumsum(viewed_partition(self.opt.blocks, model.partition))]
        for end, value in zip(np.cumsum(model.partition), result["losses"]):
            if end in view_ends:  # a stage's decoder reads the block that ends where the stage ends
                self.add(meta, name, plan.row_split, "recon_loss", value, block=view_ends.index(end) + 1, step=step)
        for key, value in result["baselines"].items():
            self.add(meta, name, plan.row_split, f"recon_loss_{key}", value, step=step)
        if self.opt.samples and step is None:
            video = next(iter(videos()))[: self.opt.samples]
            mask = model.make_mask(batch, torch.Generator().manual_seed(MASK_SEED), kind, ratio)[: self.opt.samples]
            self.samples += reconstruction_samples(model.cpu(), video.cpu(), mask, f"{source.run} ({name})")
            model.to(self.device)

    def _dynamics(self, source: Source, spec: str, meta: dict, name: str, plan: SplitPlan) -> None:
        """Final-block probe (mean over targets), retrieval mAP and recon loss at every saved checkpoint."""
        for step, model in source.checkpoints():
            model.to(self.device)
            ckpt_source = Source(f"{source.run}@{step}", str(source.run_dir / "checkpoints" / str(step)), source.regime,
                                 source.model_name, source.K, source.seed, source.config)
            test = self.store.features(ckpt_source, model, spec, plan.evaluate)
            train = self.store.features(ckpt_source, model, spec, plan.fit) if plan.fit else None
            if test.labels.shape[1]:
                partition = viewed_partition(self.opt.blocks, model.partition)
                k = len(partition)
                accs = self.probes.accuracies(test, train, "block", k, partition, all_units=False)
                self.add(meta, name, plan.row_split, "probe_acc", accs["mean"], block=k, step=step)
                maps = loo_retrieval_targets(test.blocks(partition)[-1], test.labels, test.target_names,
                                             groups=test.groups if train is None else None)
                self.add(meta, name, plan.row_split, "retrieval_map", maps["mean"]["map"], block=k, step=step)
            self._recon(source, model, spec, meta, name, plan, step=step)

    def cross_run_cka(self) -> None:
        """Block x block linear CKA, plain and debiased, between every pair of runs on the same dataset (same clips)."""
        with Timer(self.opt.timings, "cka"):
            keys = sorted(self.pooled)
            for i, (run_a, spec_a) in enumerate(keys):
                for run_b, spec_b in keys[i + 1:]:
                    a, b = self.pooled[(run_a, spec_a)], self.pooled[(run_b, spec_b)]
                    if spec_a != spec_b or len(a[0]) != len(b[0]):
                        continue
                    first = next(r for r in self.rows if r["run"] == run_a)
                    meta = {k: first[k] for k in RUN_KEYS}
                    for metric, debiased in (("cka_linear", False), ("cka_linear_debiased", True)):
                        if debiased and len(a[0]) < DEBIASED_MIN_CLIPS:
                            continue
                        matrix = cka_matrix(a, b, kind="linear", debiased=debiased)
                        for p in range(len(a)):
                            for q in range(len(b)):
                                self.add(meta, dataset_name(spec_a), None, metric, matrix[p, q], block=p + 1,
                                         block2=q + 1, run2=run_b)


@contextmanager
def extraction_workers(options: Options):
    """Under torchrun (WORLD_SIZE > 1) every rank extracts a shard of each feature set; rank 0 runs the analysis.

    Yields True where the analysis runs (rank 0, or a single process); the other ranks serve extraction requests
    (`FeatureStore.serve`) until rank 0 leaves the block, then yield False.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield True
        return
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo")  # requests and features travel as CPU objects; the models run on options.device
    if options.device == "auto" and resolve_device("auto").type == "cuda":  # each rank its own GPU
        options.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    try:
        if dist.get_rank() == 0:
            try:
                yield True
            finally:
                dist.broadcast_object_list([None], src=0)
        else:
            FeatureStore(Path("."), options).serve()
            yield False
    finally:
        if created:
            dist.destroy_process_group()
