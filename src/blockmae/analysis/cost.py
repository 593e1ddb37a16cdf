"""What an analysis will cost: its feature passes said before any work starts, and the time they will take
estimated from the first batch encoded.

Feature extraction dominates an analysis of a real checkpoint (every clip through every layer, once per pass);
the probes, similarities and reconstruction that follow have their own bars.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from tqdm.auto import tqdm

from ..config import config_from_dict
from ..data import build_dataset
from ..eval import split_plan
from .extraction import cache_key, dataset_splits
from .options import Options
from .sources import Source


@dataclass(frozen=True)
class Pass:
    """One extraction: every clip of one split of one dataset through one model (occluded: with one patch kept)."""
    run: str
    spec: str
    split: str
    occluded: bool
    clips: int
    cached: bool  # its features are already under the output's cache: no encoding


def planned_passes(sources: list[Source], data: list[str], options: Options, cache_dir) -> list[Pass]:
    """Every feature pass `analyze` will make, in order (learning dynamics' checkpoints not included)."""
    sizes: dict[tuple[str, str], tuple[int, bool]] = {}  # (spec, split) -> (clips, labelled)
    passes = []
    for source in sources:
        cfg = config_from_dict(source.config).model
        for spec in data:
            plan = split_plan(dataset_splits(spec))
            splits = [plan.evaluate] + ([plan.fit] if plan.fit else [])
            for split in splits:
                if (spec, split) not in sizes:
                    dataset = build_dataset(spec, split, frames=cfg.frames, image_size=cfg.image_size,
                                            channels=cfg.channels, seed=0)
                    sizes[(spec, split)] = (len(dataset), bool(dataset.target_names))
            labelled = sizes[(spec, plan.evaluate)][1]
            for occluded in (False, True) if options.occlusion and labelled else (False,):
                for split in splits:
                    cached = (cache_dir / f"{cache_key(source, spec, split, occluded, cfg)}.npz").exists()
                    passes.append(Pass(source.run, spec, split, occluded, sizes[(spec, split)][0], cached))
    return passes


def duration(seconds: float) -> str:
    """3 s, 4.2 min, 2.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class CostMeter:
    """Says the plan (`announce`), then, after the first batch any pass encodes, how long the remaining clip
    encodings will take at that batch's rate (`batch_done`, the `on_batch` of `eval.features.extract_features`).
    `workers`: processes encoding shards side by side (torchrun), each as fast as the one timed."""

    def __init__(self, passes: list[Pass], say: Callable[[str], None] = tqdm.write, workers: int = 1):
        self.passes, self.say, self.workers = passes, say, workers
        self.remaining = sum(p.clips for p in passes if not p.cached)
        self.estimated = False

    def announce(self, occlusion: bool) -> None:
        todo = [p for p in self.passes if not p.cached]
        lines = [f"analyze: {len(self.passes)} feature passes, {self.remaining} clip encodings to do"
                 + (f" ({len(self.passes) - len(todo)} passes cached)" if len(todo) < len(self.passes) else "")]
        for p in self.passes:
            lines.append(f"  {p.run} on {p.spec}: {p.split}{' occluded' if p.occluded else ''}, {p.clips} clips"
                         + (" (cached)" if p.cached else ""))
        if occlusion and any(p.occluded for p in self.passes):
            lines.append("  the occluded passes (the occlusion diagnostic) double the encoding; --no-occlusion "
                         "skips them")
        self.say("\n".join(lines))

    def batch_done(self, clips: int, seconds: float) -> None:
        self.remaining -= clips * self.workers
        if self.estimated or clips <= 0:
            return
        self.estimated = True
        rate = seconds / clips
        left = max(self.remaining, 0) * rate / self.workers
        finish = time.strftime("%H:%M", time.localtime(time.time() + left))
        self.say(f"analyze: first batch {clips} clips in {seconds:.1f} s ({rate:.2f} s per clip); the "
                 f"{max(self.remaining, 0)} clip encodings left take about {duration(left)} (done near {finish}), "
                 "then probes, similarities and reconstruction (their own bars)")
