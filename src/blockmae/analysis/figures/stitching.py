"""Stitching at block boundaries (`blockmae interfaces`): what joining run A's lower stages to run B's upper ones
costs, per boundary, by pair type (regime A -> regime B); pairs of seeds of one regime are the baseline."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ...regimes import color_of, display_name
from ..rows import datasets_of, pairs_of
from .style import EXTRA_COLORS, MARKERS, legend, new_figure, save, styled

# (Pair attribute, axis label, sign that turns the penalty into stitched minus own)
PANELS = (("loss", "Top-decoder loss: stitched − own", 1.0),
          ("probe_pp", "Final-block probe: stitched − own (pp)", -1.0))


@styled
def fig_stitching(rows: list[dict], out_dir: Path) -> list[Path]:
    """Per boundary k (x), stitched minus own top-decoder loss and final-block probe (pp) (columns), one row of panels
    per dataset: one solid line per cross-regime pair type (colour: regime A; marker: regime B), dashed lines for
    the seed pairs of one regime (the baseline): the mean over pairs, each pair a dot. Nothing is written without
    stitching rows."""
    datasets = datasets_of([r for r in rows if r.get("metric", "").startswith("stitch_") and r.get("run2")])
    if not datasets:
        return []
    regimes = list(dict.fromkeys(reg for r in rows if r.get("run2") for reg in (r.get("regime"), r.get("regime2"))))
    extra = iter(EXTRA_COLORS * 4)
    colors = {reg: color_of(str(reg)) or next(extra) for reg in regimes}
    markers = {reg: MARKERS[i % len(MARKERS)] for i, reg in enumerate(regimes)}
    fig = new_figure(2.6 + 3.2 * len(PANELS), 0.5 + 2.6 * len(datasets))
    axes = np.atleast_2d(fig.subplots(len(datasets), len(PANELS), squeeze=False))
    handles = {}
    for i, dataset in enumerate(datasets):
        pairs = pairs_of([r for r in rows if r.get("dataset") == dataset])
        types: dict[tuple[str, str], dict[int, list]] = defaultdict(lambda: defaultdict(list))
        for p in pairs:
            types[(p.regime, p.regime2)][p.block].append(p)
        for j, (attr, label, sign) in enumerate(PANELS):
            ax = axes[i, j]
            ax.axhline(0.0, color="#555555", linewidth=0.8, zorder=1)
            for (ra, rb), by_block in sorted(types.items(), key=lambda kv: (kv[0][0] != kv[0][1], kv[0])):
                xs = sorted(by_block)
                values = {k: [sign * getattr(p, attr) for p in by_block[k] if getattr(p, attr) is not None] for k in xs}
                xs = [k for k in xs if values[k]]
                if not xs:
                    continue
                style = dict(color=colors[ra], marker=markers[rb], linestyle="-" if ra != rb else "--",
                             label=f"{display_name(ra)} → {display_name(rb)}" + (" (seeds)" if ra == rb else ""))
                ax.plot(xs, [np.mean(values[k]) for k in xs], **style, zorder=3)
                for k in xs:  # every pair, so the spread is seen (the pairs of a few runs are not independent)
                    ax.scatter([k] * len(values[k]), values[k], s=10, color=style["color"], alpha=0.4, linewidths=0,
                               zorder=2)
                handles.setdefault(style["label"], Line2D([], [], **style))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("Boundary k (A's stages 1..k, B's after)")
            ax.set_ylabel(label)
            ax.set_title(f"{dataset}: {label.split(':')[0].lower()}" if len(datasets) > 1 else label.split(":")[0])
    legend(fig, list(handles.values()), title="A → B (mean over pairs; dots: pairs)")
    fig.suptitle("Stitching at block boundaries: below 0 (probe) or above 0 (loss) is what stitching costs")
    return [save(fig, Path(out_dir) / "stitching.png")]
