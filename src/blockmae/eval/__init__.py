"""Evaluation protocols on pooled features and token tensors (numpy / torch only; no model, data or training).

One small function per protocol; each module's docstring gives the definition used and
where it comes from (docs/paper.md and the authors' public evaluation code).
Feature extraction lives in `blockmae.eval.features` (imported from there, not here).
"""

from .geometry import (condition_number, covariance_spectrum, effective_rank, explained_variance_k, geometry_metrics,
                       isotropy_ratio, participation_ratio, sample_pairs, twonn_dimension, two_nearest_distances,
                       uniformity)
from .neighbours import knn_indices, mutual_knn, neighbour_overlap
from .probe import cv_probe, linear_probe, probe_targets, probe_unit, torch_linear_probe
from .protocols import SplitPlan, probe_folds, split_plan
from .retrieval import average_precision, gallery_retrieval, knn_classify, loo_retrieval, loo_retrieval_targets
from .similarity import cka_matrix, hsic, linear_cka, minibatch_cka, rbf_cka, rbf_gram
from .stats import mean_ci
from .tokens import occlude, occlusion_drop, occlusion_mask, relative_update_norm, token_similarity

__all__ = [
    "linear_probe", "cv_probe", "probe_targets", "probe_unit", "torch_linear_probe", "probe_folds", "split_plan",
    "SplitPlan",
    "loo_retrieval", "loo_retrieval_targets", "gallery_retrieval", "knn_classify", "average_precision",
    "linear_cka", "rbf_cka", "minibatch_cka", "cka_matrix", "hsic", "rbf_gram",
    "geometry_metrics", "covariance_spectrum", "effective_rank", "participation_ratio", "isotropy_ratio",
    "explained_variance_k", "condition_number", "uniformity", "sample_pairs", "twonn_dimension",
    "two_nearest_distances", "mutual_knn", "knn_indices", "neighbour_overlap",
    "token_similarity", "relative_update_norm", "occlusion_mask", "occlude", "occlusion_drop",
    "mean_ci",
]
