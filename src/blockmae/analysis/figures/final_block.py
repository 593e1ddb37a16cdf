"""Figure 1: the regimes compared at the last block: probe and retrieval as bars beside chance and the random-init
floor, the held-out loss as points beside the four trivial predictors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.legend_handler import HandlerTuple
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..rows import (Group, datasets_of, final_block_values, final_rows, group_sort_key, mean_and_half_width, ordered,
                    select)
from .references import (draw_chance, draw_floor, draw_loss_baselines, floor_values, reference_handles,
                         values_with_intervals)
from .style import METRICS, Styler, new_figure, save, styled

LOSS = "recon_loss"


class Panel:
    """One metric on one dataset: the trained groups placed by model, and what its reference lines drew."""

    def __init__(self, ax, values: dict[Group, list[float]], model_order: list[str], scale: float):
        self.ax, self.values, self.scale = ax, values, scale
        self.trained = sorted((g for g in values if g.regime != "random"), key=group_sort_key)
        self.models = [m for m in model_order if any(g.model == m for g in values)]
        self.width = 0.8 / max([1] + [sum(g.model == m for g in self.trained) for m in self.models])

    def positions(self) -> dict[Group, float]:
        """Each trained group's x: its model's slot, the groups side by side within it."""
        out = {}
        for c, model in enumerate(self.models):
            here = [g for g in self.trained if g.model == model]
            for b, g in enumerate(here):
                out[g] = c + (b - (len(here) - 1) / 2) * self.width
        return out

    def span(self, c: int) -> tuple[float, float]:
        """The x range of model slot `c`'s groups (where its random floor is drawn)."""
        n = sum(g.model == self.models[c] for g in self.trained)
        half = self.width * max(1, n) / 2 + 0.05
        return c - half, c + half


def _draw_group(panel: Panel, g: Group, x: float, styler: Styler, as_bar: bool) -> None:
    """A group's mean (a bar from zero, or a point), its 95% CI whisker and its seeds as dots."""
    ax, scale, width = panel.ax, panel.scale, panel.width
    mean, half = mean_and_half_width(panel.values[g])
    half = half if np.isfinite(half) else 0.0
    if as_bar:
        ax.bar(x, mean * scale, width * 0.9, color=styler.color(g), hatch=styler.hatch(g),
               edgecolor="#333333" if styler.hatch(g) else "white", linewidth=0.4, zorder=2)
    else:
        ax.plot(x, mean * scale, marker=styler.marker(g), markersize=7, color=styler.color(g), linestyle="",
                markeredgecolor="#333333", zorder=4)
    if half:
        ax.errorbar(x, mean * scale, half * scale, color="black", capsize=3, linewidth=1, zorder=4)
    pts = np.array(panel.values[g]) * scale
    jitter = np.linspace(-width * 0.2, width * 0.2, len(pts)) if len(pts) > 1 else np.zeros(1)
    ax.scatter(x + jitter, pts, s=9, color="black", alpha=0.6, zorder=5, linewidths=0)


def _zero_based_ylim(ax, extent: list[float], scale: float) -> None:
    """Bars start at zero: a zoomed axis would make 0.01 look large."""
    extent = [v for v in extent if v is not None and np.isfinite(v)]
    if extent:
        lo, hi = min(extent) * scale, max(extent) * scale
        pad = 0.1 * (hi - min(lo, 0.0)) or 0.05
        ax.set_ylim(min(0.0, lo - pad), hi + pad)


def _bars_panel(panel: Panel, rows: list[dict], metric: str, dataset: str, styler: Styler) -> dict:
    """Probe or retrieval: bars, each model's random floor (mean line, CI band), chance for the probe."""
    extent, drew = [], {"floor": False, "chance": False}
    for g, x in panel.positions().items():
        _draw_group(panel, g, x, styler, as_bar=True)
        extent += values_with_intervals(panel.values[g])
    for c, model in enumerate(panel.models):
        floor = floor_values(panel.values, model)
        if draw_floor(panel.ax, floor, panel.scale, panel.span(c)):
            extent += values_with_intervals(floor)
            drew["floor"] = True
    if metric == "probe_acc":
        chance = draw_chance(panel.ax, rows, dataset, "mean", panel.scale)
        extent.append(chance)
        drew["chance"] = chance is not None
    _zero_based_ylim(panel.ax, extent, panel.scale)
    return drew


def _loss_panel(panel: Panel, rows: list[dict], dataset: str, styler: Styler) -> list[str]:
    """Held-out loss: points (the axis is zoomed to the copy and the oracle, so no bars) beside the trivial
    predictors. The random encoders are left out: their decoders are untrained."""
    shown = []
    for g, x in panel.positions().items():
        _draw_group(panel, g, x, styler, as_bar=False)
        shown += values_with_intervals(panel.values[g])
    return draw_loss_baselines(panel.ax, rows, dataset, shown)


def _legend(fig, styler: Styler, groups: set[tuple], references: list[Line2D]) -> None:
    """A hatched bar and the loss panels' marker per (regime, K), then the reference lines, whisker and seed dot."""
    entries = sorted({Group("", reg, K) for reg, K in groups}, key=group_sort_key)
    handles = [(Patch(facecolor=styler.color(g), hatch=styler.hatch(g), edgecolor="#333333" if styler.hatch(g)
                      else "none"),
                Line2D([], [], marker=styler.marker(g), color=styler.color(g), markeredgecolor="#333333",
                       linestyle="", markersize=6)) for g in entries]
    labels = [styler.label(g, model=False) for g in entries]
    extra = references + [
        Line2D([], [], color="black", marker="|", linestyle="", markersize=8, label="95% CI"),
        Line2D([], [], color="black", marker="o", linestyle="", alpha=0.6, markersize=3, label="one seed")]
    fig.legend(handles=handles + extra, labels=labels + [h.get_label() for h in extra], loc="outside right center",
               title="mean over seeds", frameon=False, handler_map={tuple: HandlerTuple(ndivide=None, pad=0.4)})


@styled
def fig_final_layer(rows: list[dict], out_dir: Path) -> list[Path]:
    """Final-block probe accuracy (mean over targets), retrieval mAP and reconstruction loss (rows), per dataset
    (columns). Probe and mAP: bars grouped by model, one per (regime, K) with its 95% CI and the seeds as dots, the
    random floor as its mean line and CI band, chance dotted on the probe. Loss: the same groups as points beside the
    four trivial predictors' lines (the random encoders' untrained decoders are left out)."""
    rows = final_rows(rows)
    styler = Styler(rows)
    metrics = [m for m in ("probe_acc", "retrieval_map", LOSS) if select(rows, m)]
    if not metrics:
        return []
    datasets = datasets_of([r for r in rows if r.get("metric") in metrics])
    model_order = ordered(str(r.get("model")) for r in rows)
    fig = new_figure(2.4 + 2.9 * len(datasets), 0.4 + 2.4 * len(metrics))
    axes = np.atleast_2d(fig.subplots(len(metrics), len(datasets), squeeze=False))
    groups, loss_keys, drew = set(), set(), {"floor": False, "chance": False}
    for i, metric in enumerate(metrics):
        label, scale, _ = METRICS[metric]
        for j, dataset in enumerate(datasets):
            ax = axes[i, j]
            if i == 0:
                ax.set_title(dataset, fontweight="bold")
            values = final_block_values(rows, metric, dataset)
            if not values:
                ax.set_axis_off()
                continue
            ax.grid(axis="x", visible=False)
            panel = Panel(ax, values, model_order, scale)
            groups |= {(g.regime, g.K) for g in panel.trained}
            if metric == LOSS:
                loss_keys.update(_loss_panel(panel, rows, dataset, styler))
            else:
                for key, value in _bars_panel(panel, rows, metric, dataset, styler).items():
                    drew[key] |= value
            ax.set_xticks(range(len(panel.models)), panel.models)
            ax.set_xlim(-0.6, len(panel.models) - 0.4)
            ax.set_ylabel(label)
    _legend(fig, styler, groups, reference_handles(loss_keys, chance=drew["chance"], floor=drew["floor"]))
    fig.suptitle("Final block: probe accuracy, retrieval and reconstruction by regime, K and model")
    return [save(fig, Path(out_dir) / "final_layer.png")]
