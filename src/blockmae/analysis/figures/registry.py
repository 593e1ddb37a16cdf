"""Every figure by name, and drawing them all for one analysis."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

from .curves import fig_depth_decodability, fig_learning_dynamics, fig_stage_losses_cka, fig_tokens
from .continuation import fig_continuation
from .final_block import fig_final_layer
from .heatmaps import fig_cka_heatmaps
from .reconstructions import fig_reconstructions
from .saturation import fig_saturation
from .stitching import fig_stitching

# The figures drawn from rows alone, in report order ("reconstructions", drawn from samples, comes last).
FIGURES: dict[str, Callable[[list[dict], Path], list[Path]]] = {
    "final_layer": fig_final_layer,
    "depth_decodability": fig_depth_decodability,
    "stage_losses_cka": fig_stage_losses_cka,
    "saturation": fig_saturation,
    "tokens": fig_tokens,
    "cka_heatmaps": fig_cka_heatmaps,
    "learning_dynamics": fig_learning_dynamics,
    "stitching": fig_stitching,
    "continuation": fig_continuation,
}


def remove_figures(out_dir: Path) -> None:
    """An earlier analysis's figures never outlive its metrics: they go before new ones are drawn (or none are)."""
    for stale in Path(out_dir).glob("*.png"):
        stale.unlink()


def make_all_figures(rows: list[dict], out_dir: Path, samples: list[dict] | None = None,
                     strict: bool = False) -> dict[str, list[Path]]:
    """Every figure the rows (and reconstruction samples) allow: name -> written PNGs.

    A figure that fails is reported as a warning and left out (the metrics are already on disk), unless
    `strict`.
    """
    out_dir = Path(out_dir)
    remove_figures(out_dir)
    jobs = dict(FIGURES) | {"reconstructions": lambda _rows, d: fig_reconstructions(samples, d / "reconstructions.png")}
    result: dict[str, list[Path]] = {}
    for name, fn in jobs.items():
        try:
            result[name] = fn(rows, out_dir)
        except Exception as exc:  # noqa: BLE001 - one bad figure must not lose the rest of an analysis
            if strict:
                raise
            warnings.warn(f"figure {name!r} failed: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
            result[name] = []
    return result
