"""Frozen-base continuation: split a blockwise run's gap to E2E into what its lower blocks hand up and what its
upper blocks fail to learn.

For a blockwise run and a boundary k (0..K-1), stages 1..k are frozen as the run left them and stages k+1..K
train end to end with the top decoder (regime `frozen-base`, `train.init_from` the run) for a fixed budget of
steps on the run's own training data and settings. k = 0 retrains the whole encoder end to end (how much of the
gap the budget can close at all); k = K-1 trains the top stage alone on the top decoder's loss, which is what
blockwise training already did to it: the extra-steps control. The final-block probe of each continued run,
against the run's own and E2E's, says how much of the gap disappears at each k; `report.gap_split` turns the
rows into the verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..analysis.extraction import dataset_name, dataset_splits
from ..analysis.rows import make_row
from ..analysis.sources import Source, describe
from ..config import config_from_dict
from ..devices import resolve_device
from ..eval import split_plan
from ..regimes import CONTINUATION, REGIMES
from ..train.engine import pretrain
from .stitching import Clips, own_loss_and_probe

STEPS = 150
METRICS = ("continue_start_probe", "continue_start_loss", "continued_probe", "continued_loss")


def continue_config(source: Source, frozen: int, steps: int) -> dict:
    """The run's own config, as a frozen-base continuation of it with `frozen` stages fixed for `steps` steps. The
    top decoder trains as E2E's does: decoder masking is the frozen-base regime's default, not the run's."""
    data = {**source.config}
    data["model"] = {**data["model"], "decoder": {**data["model"]["decoder"], "mask_ratio": None}}
    data["train"] = {**data["train"], "regime": CONTINUATION, "regime_settings": {"frozen_stages": frozen},
                     "init_from": source.path,
                     "max_steps": steps, "epochs": None, "warmup_steps": None, "checkpoint_every": steps,
                     "log_every": max(1, steps // 10), "progress": False, "snapshot_every": None}
    return data


def continue_run(source: Source, frozen: int, steps: int, out: Path) -> Path:
    """Train (or finish, or reuse) the continuation of `source` with `frozen` stages fixed, in `out`."""
    if not (out / "summary.json").is_file():
        pretrain(config_from_dict(continue_config(source, frozen, steps)), out)
    return out


def continue_rows(paths: list[str], spec: str, out: str | Path, *, steps: int = STEPS,
                  boundaries: list[int] | None = None, batch_size: int = 32, recon_clips: int = 256,
                  device: str = "auto", say: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Tidy rows of continuing every blockwise run among `paths` with stages 1..k frozen, for every k in
    `boundaries` (default 0..K-1): `continued_probe` and `continued_loss` (held-out top-decoder loss) with k as
    `block`. Every run, E2E included, also gets `continue_start_probe` and `continue_start_loss`: the same
    measures before any continuation. Continued runs are kept (and reused) under out/continued/."""
    sources = [describe(p) for p in paths]
    blockwise = [s for s in sources if s.regime in REGIMES and REGIMES[s.regime].blockwise]
    if not blockwise:
        raise ValueError("frozen-base continuation needs at least one blockwise run (e.g. train.regime=simultaneous); "
                         f"got regimes {sorted({s.regime for s in sources})}")
    dev = resolve_device(device, "--device")
    name, plan = dataset_name(spec), split_plan(dataset_splits(spec))
    rows: list[dict] = []
    clips: dict[tuple, tuple[Clips, Clips | None]] = {}  # by clip shape and input normalisation

    def measure(source: Source, model, metric_prefix: str, block: int | None) -> None:
        model = model.to(dev).eval()
        c = model.cfg
        key = (c.frames, c.image_size, c.channels, tuple(c.pixel_mean), tuple(c.pixel_std))
        if key not in clips:
            clips[key] = (Clips(spec, plan.evaluate, c, batch_size, dev),
                          Clips(spec, plan.fit, c, batch_size, dev) if plan.fit else None)
        loss, probe = own_loss_and_probe(model, source, *clips[key], recon_clips)
        values = {f"{metric_prefix}_loss": loss, f"{metric_prefix}_probe": probe}
        rows.extend(make_row(source.meta(), name, plan.row_split, metric, value, block=block, continue_steps=steps)
                    for metric, value in values.items() if value is not None)

    for source in sources:
        say(f"measure {source.run} as given")
        measure(source, source.model(), "continue_start", None)
    for source in blockwise:
        ks = list(range(source.K)) if boundaries is None else sorted(set(boundaries))
        for k in ks:
            if not 0 <= k < source.K:
                raise ValueError(f"boundary {k} does not exist for {source.run}: continuation freezes 0..{source.K - 1} "
                                 "stages (at least the top one trains)")
        for k in ks:
            say(f"continue {source.run} with stages 1..{k} frozen: {steps} steps" if k else
                f"continue {source.run} with nothing frozen (whole encoder end to end): {steps} steps")
            run_dir = continue_run(source, k, steps, Path(out) / "continued" / f"{source.run}-frozen{k}")
            measure(source, describe(str(run_dir)).model(), "continued", k)
    return rows
