"""The saturation figure: is the late-block CKA plateau more than the plain estimator's small-sample bias?
Consecutive-block linear CKA, plain beside debiased, mutual-kNN alignment and the TwoNN dimension over depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..rows import consecutive_pairs, datasets_of, final_rows, select
from .style import METRICS, Styler, draw_pair_panel, draw_unit_series, legend, new_figure, save, styled

# panel title -> the pair metric it draws between blocks k and k+1
PAIR_PANELS = {"(a) plain linear CKA(k, k+1)": "cka_linear",
               "(b) debiased linear CKA(k, k+1)": "cka_linear_debiased",
               "(c) mutual kNN(k, k+1)": "mutual_knn"}


def _dimension_rows(rows: list[dict], dataset: str) -> tuple[str, list[dict]]:
    """TwoNN rows by layer where the analysis has them (finer), else by block."""
    for unit in ("layer", "block"):
        sel = select(rows, "twonn_id", unit, dataset=dataset)
        if sel:
            return unit, sel
    return "block", []


def _shared_cka_axis(plain, debiased) -> None:
    """Plain and debiased CKA on one y-range, so the drop from one to the other reads directly."""
    low = min(plain.get_ylim()[0], debiased.get_ylim()[0])
    high = max(plain.get_ylim()[1], debiased.get_ylim()[1])
    for ax in (plain, debiased):
        ax.set_ylim(low, high)


@styled
def fig_saturation(rows: list[dict], out_dir: Path) -> list[Path]:
    """Per dataset (rows): (a) plain and (b) debiased linear CKA between consecutive blocks on one y-range,
    (c) mutual kNN between consecutive blocks (a pair k->k+1 at relative depth (k+1)/K), (d) the TwoNN intrinsic
    dimension vs layer (vs relative depth without layer rows); a line per (regime, K) with 95% CI bands over seeds,
    random init dashed."""
    rows = final_rows(rows)
    styler = Styler(rows)
    datasets = [d for d in datasets_of(rows)
                if consecutive_pairs(rows, "cka_linear_debiased", d) or consecutive_pairs(rows, "mutual_knn", d)
                or _dimension_rows(rows, d)[1]]
    if not datasets:
        return []
    fig = new_figure(2.2 + 3.4 * 4, 0.5 + 2.8 * len(datasets))
    axes = np.atleast_2d(fig.subplots(len(datasets), 4, squeeze=False))
    groups = set()
    for i, dataset in enumerate(datasets):
        for ax, (title, metric) in zip(axes[i], PAIR_PANELS.items()):
            pairs = consecutive_pairs(rows, metric, dataset)
            if pairs:
                groups |= draw_pair_panel(ax, pairs, styler, metric, f"{title} · {dataset}")
            else:
                ax.set_visible(False)
        if axes[i, 0].get_visible() and axes[i, 1].get_visible():
            _shared_cka_axis(axes[i, 0], axes[i, 1])
        unit, dims = _dimension_rows(rows, dataset)
        ax = axes[i, 3]
        if dims:
            groups |= draw_unit_series(ax, dims, unit, styler, "twonn_id")
            ax.set_ylabel(METRICS["twonn_id"][0])
            ax.set_title(f"(d) intrinsic dimension · {dataset}")
        else:
            ax.set_visible(False)
    legend(fig, styler.handles(groups))
    fig.suptitle("Saturation, with and without bias")
    return [save(fig, Path(out_dir) / "saturation.png")]
