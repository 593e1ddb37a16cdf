"""How every figure looks: colour per regime (from `blockmae.regimes`), marker per K, line style per model,
the axis label and scale of each metric, and the canvas helpers the figure modules share.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through pyplot, so
drawing changes no global backend and leaks no open figures.
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import Callable

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ...regimes import color_of, display_name, display_order
from ..rows import Group, group_of, group_sort_key, mean_and_half_width, series, with_depth

DPI = 150
# Colours for regimes `blockmae.regimes` does not know (Okabe-Ito's remaining ones, then Tol's).
EXTRA_COLORS = ["#56B4E9", "#F0E442", "#882255", "#44AA99", "#999933", "#AA4499"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
MODEL_STYLES = ["-", ":", "-.", (0, (5, 1, 1, 1))]
HATCHES = ["", "///", "xxx", "...", "\\\\\\", "ooo"]
FLOOR_COLOR = color_of("random")  # the random-init floor and the lookup-table line

# metric -> (axis label, scale applied to values, bounds of the unscaled value): accuracies are stored as
# fractions and shown in %; CI bands are clipped to the bounds.
METRICS = {
    "probe_acc": ("Linear-probe accuracy (%)", 100.0, (0.0, 1.0)),
    "attentive_probe_acc": ("Attentive-probe accuracy (%)", 100.0, (0.0, 1.0)),
    "knn_acc": ("kNN accuracy (%)", 100.0, (0.0, 1.0)),
    "retrieval_map": ("Retrieval mAP (0-1)", 1.0, (0.0, 1.0)),
    "recon_loss": ("Masked reconstruction MSE", 1.0, (0.0, math.inf)),
    "cka_linear": ("Linear CKA (0-1)", 1.0, (0.0, 1.0)),
    "cka_rbf": ("RBF CKA (0-1)", 1.0, (0.0, 1.0)),
    "cka_linear_debiased": ("Debiased linear CKA", 1.0, (-1.0, 1.0)),  # the unbiased estimator can dip below 0
    "cka_rbf_debiased": ("Debiased RBF CKA", 1.0, (-1.0, 1.0)),
    "mutual_knn": ("Mutual kNN alignment (0-1)", 1.0, (0.0, 1.0)),
    "twonn_id": ("Intrinsic dimension (TwoNN)", 1.0, (0.0, math.inf)),
    "token_similarity": ("Token similarity (mean cosine)", 1.0, (-1.0, 1.0)),
    "occlusion_drop": ("Occlusion drop (% of full acc.)", 100.0, (-math.inf, 1.0)),
}
RC_STYLE = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8, "legend.title_fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6, "lines.linewidth": 1.6, "lines.markersize": 4.5,
    "figure.facecolor": "white", "savefig.facecolor": "white", "figure.titlesize": 11,
}
CI_NOTE = "mean ± 95% CI over seeds"


class Styler:
    """Colour per regime, marker per K, line style per model; identical for every figure of the same rows."""

    def __init__(self, rows: list[dict]):
        groups = {group_of(r) for r in rows}
        self.models = sorted({g.model for g in groups})
        self.Ks = sorted({g.K for g in groups if g.K is not None})
        extra = sorted({g.regime for g in groups if color_of(g.regime) is None})
        self.colors = {name: color_of(name) for name in display_order()}
        self.colors |= {reg: EXTRA_COLORS[i % len(EXTRA_COLORS)] for i, reg in enumerate(extra)}

    def label(self, g: Group, model: bool = True) -> str:
        text = display_name(g.regime)
        if g.K is not None and g.K > 1 and (g.regime != "random" or len(self.Ks) > 1):
            text += f" K={g.K}"
        if model and len(self.models) > 1:
            text = f"{g.model} · {text}"
        return text

    def color(self, g: Group) -> str:
        return self.colors.get(g.regime, "#333333")

    def marker(self, g: Group) -> str:
        return MARKERS[self.Ks.index(g.K) % len(MARKERS)] if g.K in self.Ks else "o"

    def hatch(self, g: Group) -> str:
        return HATCHES[self.Ks.index(g.K) % len(HATCHES)] if g.K in self.Ks else ""

    def line(self, g: Group) -> dict:
        style = "--" if g.regime == "random" else MODEL_STYLES[self.models.index(g.model) % len(MODEL_STYLES)]
        return {"color": self.color(g), "marker": self.marker(g), "linestyle": style, "label": self.label(g)}

    def handles(self, groups) -> list[Line2D]:
        return [Line2D([], [], **self.line(g)) for g in sorted(groups, key=group_sort_key)]


def styled(fn: Callable) -> Callable:
    """Draw under the figures' rc style without touching the global one."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC_STYLE):
            return fn(*args, **kwargs)
    return wrapper


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def slug(text: str) -> str:
    """`text` as a file-name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "data"


def legend(fig: Figure, handles, title: str = CI_NOTE) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside right center", title=title, frameon=False)


def grid(fig: Figure, n: int, ncols: int):
    """`n` axes on a grid `ncols` wide (the spare cells hidden)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


DEPTH_LABEL = "Depth (fraction of the encoder;\nblock k of K at k/K)"
PAIR_DEPTH_LABEL = "Depth (fraction of the encoder;\npair k→k+1 at (k+1)/K)"


def depth_axis(ax, label: str = DEPTH_LABEL) -> None:
    """x = where a block ends as a fraction of the encoder (`rows.with_depth`), so runs of any K share the axis."""
    ax.set_xlim(0.0, 1.05)
    ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0], ["0", "0.25", "0.5", "0.75", "1"])
    ax.set_xlabel(label)


def draw_depth_series(ax, rows: list[dict], styler: Styler, metric: str | None, pairs: bool = False) -> set[Group]:
    """Block rows (or consecutive-block pair rows) as lines over relative depth: block K of every run at 1."""
    groups = draw_series(ax, series(with_depth(rows, pairs), "depth"), styler, metric)
    depth_axis(ax, PAIR_DEPTH_LABEL if pairs else DEPTH_LABEL)
    return groups


def draw_unit_series(ax, rows: list[dict], unit: str, styler: Styler, metric: str | None) -> set[Group]:
    """Block rows over relative depth, layer rows over the layer index (1 = first)."""
    if unit == "block":
        return draw_depth_series(ax, rows, styler, metric)
    groups = draw_series(ax, series(rows, unit), styler, metric)
    ax.set_xlabel(f"{unit.capitalize()} (1 = first)")
    return groups


def draw_pair_panel(ax, rows: list[dict], styler: Styler, metric: str, title: str) -> set[Group]:
    """A pair metric between consecutive blocks (rows with block k and block2 k+1) over relative depth, one line
    per group."""
    groups = draw_depth_series(ax, rows, styler, metric, pairs=True)
    ax.set_ylabel(METRICS[metric][0])
    ax.set_title(title)
    return groups


def draw_series(ax, data: dict[Group, dict[int, list[float]]], styler: Styler, metric: str | None = None) -> set[Group]:
    """A line per group (mean over runs) with a 95% CI band where it has several runs, in the metric's units."""
    _, scale, (low, high) = METRICS.get(metric, ("", 1.0, (-math.inf, math.inf)))
    for g in sorted(data, key=group_sort_key):
        xs = sorted(data[g])
        stats = np.array([mean_and_half_width(data[g][x]) for x in xs], dtype=float)
        mean, half = stats[:, 0], stats[:, 1]
        style = styler.line(g)
        ax.plot(xs, mean * scale, **style, zorder=3 if g.regime != "random" else 2)
        if np.isfinite(half).any():
            band = np.clip(mean - half, low, high) * scale, np.clip(mean + half, low, high) * scale
            ax.fill_between(xs, *band, color=style["color"], alpha=0.18, linewidth=0, zorder=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return set(data)
