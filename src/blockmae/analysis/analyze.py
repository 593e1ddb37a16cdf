"""The measuring half of `blockmae analyze`: sources x datasets -> metrics.jsonl, figures/ (the report over them is
`report.analyze`)."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..config import config_from_dict
from ..data.spec import check_spec
from .cost import CostMeter, planned_passes
from .figures import make_all_figures, remove_figures
from .options import Options, viewed_partition
from .rows_file import ROWS, write_rows
from .sources import describe, random_floor_count, random_floors
from .suite import Analysis


@dataclass
class Measured:
    """What a report is written from: the rows, the figures drawn from them, the sources and the timings."""
    rows: list[dict]
    figures: dict[str, list[Path]]
    runs: list[dict]
    timings: dict[str, float]


def measure(paths: list[str], data: list[str], out: str | Path, options: Options | None = None,
            with_random_floor: bool | int = False, extra_rows: list[dict] | None = None) -> Measured:
    """Analyse every source on every data spec: out/metrics.jsonl, out/figures/ and out/timings.json.
    `with_random_floor`: also that many random encoders of the first source's shape (True:
    `sources.DEFAULT_RANDOM_FLOORS`). `extra_rows` (e.g. `blockmae interfaces` rows on the same runs) join the
    analysis's rows in metrics.jsonl and the figures."""
    out = Path(out)
    for spec in data:  # a bad spec or source fails before `out` exists, so it leaves no empty directory
        check_spec(spec)
    options = options or Options()
    sources = [describe(p) for p in paths]
    for s in sources:  # every source viewed as the blocks asked for (a bad --blocks fails before any work)
        s.K = len(viewed_partition(options.blocks, config_from_dict(s.config).model.partition))
    names = [s.run for s in sources]
    for i, s in enumerate(sources):  # two runs with the same directory name stay distinguishable
        if names.count(s.run) > 1:
            s.run = f"{s.run}-{i + 1}"
    sources += random_floors(sources[0], random_floor_count(with_random_floor))
    passes = planned_passes(sources, data, options, out / "cache")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    analysis = Analysis(out, options)
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    analysis.store.meter = CostMeter(passes, say=tqdm.write if options.progress else (lambda line: None),
                                     workers=world)
    analysis.store.meter.announce(options.occlusion)
    # --threads caps BLAS too (numpy, scipy: the probes fitted in this process), as torch.set_num_threads does torch
    with threadpool_limits(options.threads) if options.threads else contextlib.nullcontext():
        for source in sources:
            for spec in data:
                analysis.run(source, spec)
        analysis.cross_run_cka()
    analysis.rows += extra_rows or []
    write_rows(out / ROWS, analysis.rows)
    timings = dict(options.timings)
    figures = {}
    if options.figures:
        t = time.perf_counter()
        figures = make_all_figures(analysis.rows, out / "figures", samples=analysis.samples)
        timings["figures"] = time.perf_counter() - t
    else:
        remove_figures(out / "figures")
    timings["total"] = time.perf_counter() - started
    runs = [{"run": s.run, "path": s.path, "regime": s.regime, "K": s.K, "seed": s.seed, "model": s.model_name,
             "config": s.config} for s in sources]
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    return Measured(analysis.rows, figures, runs, timings)
