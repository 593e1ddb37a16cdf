"""What an analysis is asked to do (`blockmae analyze` options), and where its time goes."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field


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
    attentive: bool = False  # also the attentive probe (eval.attentive) on kept token sets: attentive_probe_acc
    strict: bool = False  # an unreadable evaluation clip is an error instead of being left out
    progress: bool = True
    timings: dict = field(default_factory=lambda: defaultdict(float))  # family -> seconds


class Timer:
    """Adds the wall time of its block to `timings[family]`."""

    def __init__(self, timings: dict, family: str):
        self.timings, self.family = timings, family

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.family] += time.perf_counter() - self.start
