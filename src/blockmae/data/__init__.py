"""Data: dataset specs, the built-in procedural datasets, and real video collections.

A clip is uint8 (T, H, W, C) with labels int64 (n_targets,). This package imports nothing
from the rest of blockmae, so it can be used (and tested) on its own.
"""

from .check import check_dataset
from .digits import MovingDigits
from .gratings import DriftingGratings, TwoRegionGratings, render_grating, render_two_region
from .hierarchy import HierarchyVideos
from .scenes import TexturedScenes
from .listfile import Entry, ListFileError, VideoDataset, read_list
from .robust import SkipCorrupt, TooManyCorrupt, collate
from .spec import DatasetInfo, Option, available_datasets, build_dataset, parse_spec, register_dataset, spec_splits
from .video import REASONS, VideoDecodeError, available_backends, open_video

__all__ = [
    "DatasetInfo", "DriftingGratings", "Entry", "HierarchyVideos", "ListFileError", "MovingDigits", "Option", "REASONS", "SkipCorrupt", "TexturedScenes",
    "TooManyCorrupt", "TwoRegionGratings", "VideoDataset", "VideoDecodeError", "available_backends",
    "available_datasets", "build_dataset", "check_dataset", "collate", "open_video", "parse_spec", "read_list",
    "register_dataset", "render_grating", "render_two_region", "spec_splits",
]
