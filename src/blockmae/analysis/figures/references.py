"""What every figure draws beside the runs, so that no number stands without its baselines: chance (the
majority class) and the random-init floor on probe panels, the four trivial predictors on loss panels."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.lines import Line2D

from ..rows import chance_of, mean_and_half_width, trivial_losses_of
from .style import FLOOR_COLOR

CHANCE_STYLE = {"color": "#333333", "linestyle": ":", "linewidth": 1.3}
FLOOR_STYLE = {"color": FLOOR_COLOR, "linestyle": "--", "linewidth": 1.4}
# baseline key (rows `recon_loss_<key>`) -> (legend label, short name, line style)
LOSS_BASELINES = {
    "zero": ("predict 0", "predict 0", {"color": "#BBBBBB", "linestyle": "-."}),
    "position_mean": ("position mean (lookup table)", "lookup", {"color": FLOOR_COLOR, "linestyle": ":"}),
    "visible_mean": ("visible mean (copy)", "copy", {"color": "#000000", "linestyle": "--"}),
    "oracle_constant": ("per-clip oracle constant", "oracle", {"color": "#000000", "linestyle": (0, (5, 2, 1, 2))}),
}
# The trivial predictors the loss axis always shows; the weaker ones are drawn only where they fall on it.
ALWAYS_SHOWN = ("visible_mean", "oracle_constant")


def draw_chance(ax, rows: list[dict], dataset: str, target: str = "mean", scale: float = 100.0) -> float | None:
    """A dotted line labelled 'chance' at the majority-class share of `target`; returns it (None: no chance rows)."""
    chance = chance_of(rows, dataset, target)
    if chance is not None:
        ax.axhline(chance * scale, label="chance", zorder=2.5, **CHANCE_STYLE)  # over bars, under whiskers
    return chance


def draw_floor(ax, values: list[float], scale: float = 100.0, span: tuple[float, float] | None = None) -> bool:
    """The random-init floor: its mean over seeds as a dashed line with its 95% CI band, across the axes or over
    `span` (x from, x to). False (nothing drawn) without values."""
    if not values:
        return False
    mean, half = mean_and_half_width(values)
    if span is None:
        ax.axhline(mean * scale, label="random init", zorder=2, **FLOOR_STYLE)
        if math.isfinite(half):
            ax.axhspan((mean - half) * scale, (mean + half) * scale, color=FLOOR_COLOR, alpha=0.15, linewidth=0)
    else:
        ax.hlines(mean * scale, *span, label="random init", zorder=3, **FLOOR_STYLE)
        if math.isfinite(half):
            ax.fill_between(span, (mean - half) * scale, (mean + half) * scale, color=FLOOR_COLOR, alpha=0.2,
                            linewidth=0, zorder=1)
    return True


def draw_loss_baselines(ax, rows: list[dict], dataset: str, shown: list[float]) -> list[str]:
    """The trivial predictors' losses on `dataset` as labelled horizontal lines, on a y-range that spans `shown` (the
    runs' values, intervals included), the copy and the oracle, so a run's distance to them stays readable. Predict-0
    and the position mean are drawn where they fall in that range; otherwise their values are written in the
    panel's corner. Returns the keys drawn (nothing without baseline rows: the axis is left as it is)."""
    losses = trivial_losses_of(rows, dataset)
    span = [v for v in shown if math.isfinite(v)] + [losses[k] for k in ALWAYS_SHOWN if k in losses]
    if not losses or not span:
        return []
    low, high = min(span), max(span)
    pad = 0.12 * (high - low) or 0.02 * abs(high) or 0.01
    low, high = low - pad, high + pad
    drawn, off_axis = [], []
    for key, (label, short, style) in LOSS_BASELINES.items():
        if key not in losses:
            continue
        if low <= losses[key] <= high:
            ax.axhline(losses[key], label=label, zorder=1.5, linewidth=1.2, **style)
            drawn.append(key)
        else:
            off_axis.append(f"{short} {losses[key]:.3f} ({'above' if losses[key] > high else 'below'})")
    if off_axis:  # room above the runs for the note
        high += 2.5 * pad
        note = ax.text(0.02, 0.98, "off the axis:\n" + ", ".join(off_axis), transform=ax.transAxes, va="top",
                       ha="left", fontsize=6.5, color="#555555")
        note.set_in_layout(False)
    ax.set_ylim(low, high)
    return drawn


def values_with_intervals(values: list[float]) -> list[float]:
    """A group's values and the ends of its 95% interval: what a loss axis must show of it."""
    mean, half = mean_and_half_width(values)
    return list(values) + ([mean - half, mean + half] if math.isfinite(half) else [])


def series_extent(data: dict) -> list[float]:
    """Every value and interval end of a `rows.series` result (group -> x -> values)."""
    return [v for per_x in data.values() for values in per_x.values() for v in values_with_intervals(values)]


def reference_handles(loss_keys, chance: bool = False, floor: bool = False) -> list[Line2D]:
    """Legend entries for the reference lines a figure drew."""
    handles = [Line2D([], [], label="chance (majority class)", **CHANCE_STYLE)] if chance else []
    if floor:
        handles.append(Line2D([], [], label="random init (mean, 95% CI band)", **FLOOR_STYLE))
    handles += [Line2D([], [], label=LOSS_BASELINES[k][0], linewidth=1.2, **LOSS_BASELINES[k][2])
                for k in LOSS_BASELINES if k in set(loss_keys)]
    return handles


def floor_values(values_by_group: dict, model: str | None = None) -> list[float]:
    """Every random-init run's value among `values_by_group` (group -> values), of one model when given."""
    return [float(v) for g, values in values_by_group.items() if g.regime == "random"
            and (model is None or g.model == model) for v in np.atleast_1d(values)]
