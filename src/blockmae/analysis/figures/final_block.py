"""Figure 1: the regimes compared at the last block, as bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..rows import (Group, datasets_of, final_block_values, final_rows, group_sort_key, lookup_losses,
                    mean_and_half_width, ordered, select)
from .style import FLOOR_COLOR, METRICS, Styler, legend, new_figure, save, styled


@styled
def fig_final_layer(rows: list[dict], out_dir: Path) -> list[Path]:
    """Final-block probe accuracy (mean over targets), retrieval mAP and reconstruction loss (rows), per dataset
    (columns): bars grouped by model, one bar per (regime, K) with its 95% CI and the seeds as dots; the random
    floor is a dashed line (not for the reconstruction loss: its decoders are untrained)."""
    rows = final_rows(rows)
    styler = Styler(rows)
    metrics = [m for m in ("probe_acc", "retrieval_map", "recon_loss") if select(rows, m)]
    if not metrics:
        return []
    datasets = datasets_of([r for r in rows if r.get("metric") in metrics])
    model_order = ordered(str(r.get("model")) for r in rows)
    fig = new_figure(2.4 + 2.9 * len(datasets), 0.4 + 2.4 * len(metrics))
    axes = np.atleast_2d(fig.subplots(len(metrics), len(datasets), squeeze=False))
    legend_bars, has_floor, has_lookup = set(), False, False
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
            trained = sorted((g for g in values if g.regime != "random"), key=group_sort_key)
            floors = [g for g in values if g.regime == "random"] if metric != "recon_loss" else []
            models = [m for m in model_order if any(g.model == m for g in values)]
            width = 0.8 / max([1] + [sum(g.model == m for g in trained) for m in models])
            extent = []
            for c, model in enumerate(models):
                bars = [g for g in trained if g.model == model]
                for b, g in enumerate(bars):
                    x = c + (b - (len(bars) - 1) / 2) * width
                    mean, half = mean_and_half_width(values[g])
                    half = half if np.isfinite(half) else 0.0
                    ax.bar(x, mean * scale, width * 0.9, color=styler.color(g), hatch=styler.hatch(g),
                           edgecolor="#333333" if styler.hatch(g) else "white", linewidth=0.4, zorder=2)
                    if half:
                        ax.errorbar(x, mean * scale, half * scale, color="black", capsize=3, linewidth=1, zorder=4)
                    pts = np.array(values[g]) * scale
                    jitter = np.linspace(-width * 0.2, width * 0.2, len(pts)) if len(pts) > 1 else np.zeros(1)
                    ax.scatter(x + jitter, pts, s=9, color="black", alpha=0.6, zorder=5, linewidths=0)
                    extent += [mean - half, mean + half, *values[g]]
                    legend_bars.add((g.regime, g.K))
                floor = [v for g in floors if g.model == model for v in values[g]]
                if floor:  # one line per model: random encoders of any K end in the same layer
                    span = width * max(1, len(bars)) / 2 + 0.05
                    ax.hlines(np.mean(floor) * scale, c - span, c + span, color=FLOOR_COLOR,
                              linestyle="--", linewidth=1.4, zorder=3)
                    extent.append(float(np.mean(floor)))
                    has_floor = True
            ax.set_xticks(range(len(models)), models)
            ax.set_xlim(-0.6, len(models) - 0.4)
            if metric == "recon_loss":  # what learning nothing scores: each position's mean target
                lookup = lookup_losses(rows, dataset)
                if lookup:
                    ax.axhline(np.mean(lookup) * scale, color=FLOOR_COLOR, linestyle=":", linewidth=1.4, zorder=3)
                    extent.append(float(np.mean(lookup)))
                    has_lookup = True
            extent = [v for v in extent if np.isfinite(v)]
            if extent:  # bars start at zero: a zoomed axis would make 0.01 look large
                lo, hi = np.nanmin(extent) * scale, np.nanmax(extent) * scale
                pad = 0.1 * (hi - min(lo, 0.0)) or 0.05
                ax.set_ylim(min(0.0, lo - pad), hi + pad)
            ax.set_ylabel(label)
    bar_groups = sorted({Group("", reg, K) for reg, K in legend_bars}, key=group_sort_key)
    handles = [Patch(facecolor=styler.color(g), hatch=styler.hatch(g), label=styler.label(g, model=False),
                     edgecolor="#333333" if styler.hatch(g) else "none") for g in bar_groups]
    if has_floor:
        handles.append(Line2D([], [], color=FLOOR_COLOR, linestyle="--", label="Random init (floor)"))
    if has_lookup:
        handles.append(Line2D([], [], color=FLOOR_COLOR, linestyle=":", label="MSE of predicting each position's mean"))
    handles += [Line2D([], [], color="black", marker="|", linestyle="", markersize=8, label="95% CI"),
                Line2D([], [], color="black", marker="o", linestyle="", alpha=0.6, markersize=3, label="one seed")]
    legend(fig, handles, title="mean over seeds")
    fig.suptitle("Final block: probe accuracy, retrieval and reconstruction by regime, K and model")
    return [save(fig, Path(out_dir) / "final_layer.png")]
