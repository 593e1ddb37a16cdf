"""Data: dataset specs and the built-in procedural datasets.

A clip is uint8 (T, H, W, C) with labels int64 (n_targets,). This package imports nothing
from the rest of blockmae, so it can be used (and tested) on its own.
"""

from .digits import MovingDigits
from .gratings import DriftingGratings, TwoRegionGratings, render_grating, render_two_region
from .spec import DatasetInfo, Option, available_datasets, build_dataset, parse_spec, register_dataset

__all__ = [
    "DatasetInfo", "DriftingGratings", "MovingDigits", "Option", "TwoRegionGratings", "available_datasets",
    "build_dataset", "parse_spec", "register_dataset", "render_grating", "render_two_region",
]
