"""What an analysis is asked to do (`blockmae analyze` options), and where its time goes."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import ConfigError


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
    figures: bool = True  # draw figures/ (False: metrics and report only, e.g. many checkpoints in a loop)
    device: str = "auto"
    probe: str = "sklearn"  # sklearn (the authors' protocol) | torch (all layers at once, GPU when present)
    attentive: bool = False  # also the attentive probe (eval.attentive) on kept token sets: attentive_probe_acc
    strict: bool = False  # an unreadable evaluation clip is an error instead of being left out
    progress: bool = True
    blocks: int | list[int] | None = None  # view every model as K equal blocks or these layer counts (None: its stages)
    threads: int | None = None  # torch's CPU threads (None: torch's default)
    timings: dict = field(default_factory=lambda: defaultdict(float))  # family -> seconds


class Timer:
    """Adds the wall time of its block to `timings[family]`."""

    def __init__(self, timings: dict, family: str):
        self.timings, self.family = timings, family

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timings[self.family] += time.perf_counter() - self.start


def viewed_partition(blocks: int | list[int] | None, own: list[int]) -> list[int]:
    """The blocks `analyze` shows a model as: its own stages (`blocks` None), K equal blocks of its layers, or the
    given layer counts (`--blocks`). The model is unchanged; only which layers count as block ends."""
    if blocks is None:
        return list(own)
    depth = sum(own)
    if isinstance(blocks, int):
        if blocks < 1 or depth % blocks:
            divisors = [k for k in range(1, depth + 1) if depth % k == 0]
            raise ConfigError(f"--blocks {blocks}: the encoder has {depth} layers, which {blocks} equal blocks do "
                              f"not divide; give one of {divisors} or layer counts summing to {depth} (e.g. "
                              f"--blocks {','.join(map(str, [depth - depth // 2, depth // 2]))})")
        return [depth // blocks] * blocks
    if not blocks or any(n < 1 for n in blocks) or sum(blocks) != depth:
        raise ConfigError(f"--blocks {','.join(map(str, blocks))}: layer counts must be positive and sum to the "
                          f"encoder's {depth} layers (they sum to {sum(blocks)})")
    return list(blocks)
