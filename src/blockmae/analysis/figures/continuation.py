"""Frozen-base continuation (`blockmae interfaces --continue-steps`): how much of a blockwise run's gap to E2E
closes when only the stages above k are retrained end to end."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib.lines import Line2D

from ...regimes import REFERENCE
from ..rows import Group, datasets_of, group_of, mean_and_half_width
from .style import Styler, draw_series, legend, new_figure, save, styled


@styled
def fig_continuation(rows: list[dict], out_dir: Path) -> list[Path]:
    """Per dataset, the final-block probe (%) of each blockwise regime continued with stages 1..k frozen (x = k; a
    line with its 95% CI band over seeds), beside the same regime as trained (dotted, its colour) and E2E as
    trained (dashed, E2E's colour). Nothing is written without continuation rows."""
    rows = [r for r in rows if str(r.get("metric", "")).startswith("continue")]
    datasets = datasets_of(rows)
    if not datasets:
        return []
    styler = Styler(rows)
    fig = new_figure(2.6 + 4.0 * len(datasets), 3.4)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    handles: dict[str, Line2D] = {}
    for ax, dataset in zip(axes, datasets):
        here = [r for r in rows if r.get("dataset") == dataset]
        continued: dict[Group, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        start: dict[Group, list[float]] = defaultdict(list)
        for r in here:
            if r["metric"] == "continued_probe":
                continued[group_of(r)][r["block"]].append(r["value"])
            elif r["metric"] == "continue_start_probe":
                start[group_of(r)].append(r["value"])
        for g in draw_series(ax, continued, styler, "probe_acc"):
            label = styler.label(g) + " continued"
            handles.setdefault(label, Line2D([], [], **(styler.line(g) | {"label": label})))
        for g, values in start.items():
            if g in continued or g.regime == REFERENCE:
                style = "--" if g.regime == REFERENCE else ":"
                ax.axhline(100 * mean_and_half_width(values)[0], color=styler.color(g), linestyle=style, linewidth=1.2)
                label = styler.label(g) + " as trained"
                handles.setdefault(label, Line2D([], [], color=styler.color(g), linestyle=style, label=label))
        ax.set_xlabel("Stages 1..k frozen (0: whole encoder retrained)")
        ax.set_ylabel("Final-block probe accuracy (%)")
        steps = next((r.get("continue_steps") for r in here if r.get("continue_steps")), None)
        ax.set_title(f"{dataset}" + (f": {steps} continuation steps" if steps else ""))
    legend(fig, list(handles.values()), title="mean over seeds, 95% CI band")
    fig.suptitle("Frozen-base continuation: the gap to E2E that retraining the stages above k closes")
    return [save(fig, Path(out_dir) / "continuation.png")]
