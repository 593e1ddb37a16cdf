"""The CKA heatmaps: layer x layer (or block x block) within a group of runs, and block x block across runs."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ...regimes import REFERENCE
from ..rows import Group, datasets_of, final_rows, group_of, group_sort_key, select
from .style import Styler, grid, new_figure, save, slug, styled


def _matrix(entries: list[tuple[int, int, float]]) -> np.ndarray:
    """Mean value per (i, j) cell (1-based indices; the two runs may have different numbers of blocks)."""
    shape = (max(i for i, _, _ in entries), max(j for _, j, _ in entries))
    acc, cnt = np.zeros(shape), np.zeros(shape)
    for i, j, v in entries:
        acc[i - 1, j - 1] += v
        cnt[i - 1, j - 1] += 1
    with np.errstate(invalid="ignore"):
        return np.where(cnt > 0, acc / np.maximum(cnt, 1), np.nan)


def within_run_cka(rows: list[dict], dataset: str) -> tuple[str, dict[Group, tuple[np.ndarray, int]]]:
    """('layer' or 'block', group -> (mean matrix over the group's runs, number of runs)).

    Layer x layer rows are used when present; else block x block rows when they are more than the
    consecutive pairs.
    """
    for unit in ("layer", "block"):
        sel = [r for r in select(rows, "cka_linear", unit, dataset=dataset, pairs=True) if r.get("run2") is None
               and r.get(f"{unit}2") is not None]
        if not sel or all(abs(r[f"{unit}2"] - r[unit]) == 1 for r in sel):
            continue
        by_group = defaultdict(list)
        for r in sel:
            by_group[group_of(r)].append((r[unit], r[f"{unit}2"], r["value"], r.get("run")))
        return unit, {g: (_matrix([e[:3] for e in ents]), len({e[3] for e in ents})) for g, ents in by_group.items()}
    return "block", {}


def across_run_cka(rows: list[dict], dataset: str) -> dict[tuple[Group, Group], tuple[np.ndarray, int]]:
    """(group A, group B) -> (mean block x block CKA matrix, rows = A's blocks, number of run pairs)."""
    groups = {r.get("run"): group_of(r) for r in rows if r.get("run2") is None}
    sel = [r for r in select(rows, "cka_linear", "block", dataset=dataset, pairs=True) if r.get("run2") is not None]
    entries, pairs = defaultdict(list), defaultdict(set)
    for r in sel:
        ga = groups.get(r.get("run"), group_of(r))
        gb = groups.get(r["run2"], Group("?", str(r["run2"]), None))
        i, j = r["block"], r["block2"]
        if group_sort_key(gb) < group_sort_key(ga):
            ga, gb, i, j = gb, ga, j, i
        entries[(ga, gb)].append((i, j, r["value"]))
        pairs[(ga, gb)].add(frozenset((r.get("run"), r["run2"])))
    return {k: (_matrix(v), len(pairs[k])) for k, v in entries.items()}


def _heatmaps(panels: list[tuple[str, np.ndarray, str, str]], suptitle: str, path: Path) -> Path:
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure(1.2 + 3.5 * ncols, 0.6 + 3.3 * nrows)
    image = None
    for ax, (title, m, ylabel, xlabel) in zip(grid(fig, len(panels), ncols), panels):
        ax.grid(False)
        n0, n1 = m.shape
        image = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="equal",
                          extent=(0.5, n1 + 0.5, 0.5, n0 + 0.5), interpolation="nearest")
        step1, step0 = max(1, math.ceil(n1 / 12)), max(1, math.ceil(n0 / 12))
        ax.set_xticks(range(1, n1 + 1, step1))
        ax.set_yticks(range(1, n0 + 1, step0))
        if max(n0, n1) <= 8:  # small enough to print every cell's value
            for a in range(n0):
                for b in range(n1):
                    if np.isfinite(m[a, b]):
                        ax.text(b + 1, a + 1, f"{m[a, b]:.2f}", ha="center", va="center", fontsize=7,
                                color="black" if m[a, b] > 0.6 else "white")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
    fig.colorbar(image, ax=fig.axes, shrink=min(0.8, 1.6 / nrows), label="Linear CKA (0-1)")
    fig.suptitle(suptitle)
    return save(fig, path)


@styled
def fig_cka_heatmaps(rows: list[dict], out_dir: Path, max_pairs: int = 12) -> list[Path]:
    """Linear-CKA heatmaps per dataset: layer x layer (or block x block) within each group of runs (mean over
    seeds), and block x block across runs (`run2` rows), one panel per pair of groups (at most `max_pairs`:
    seed-vs-seed and pairs with E2E first)."""
    rows = final_rows(rows)
    styler = Styler(rows)
    paths = []
    for dataset in datasets_of(select(rows, "cka_linear", pairs=True, target=None)
                               + select(rows, "cka_linear", "layer", pairs=True, target=None)):
        unit, within = within_run_cka(rows, dataset)
        if within:
            panels = [(f"{styler.label(g)}" + (f" (mean of {n} runs)" if n > 1 else ""), m,
                       f"{unit.capitalize()}", f"{unit.capitalize()}") for g, (m, n) in
                      sorted(within.items(), key=lambda kv: group_sort_key(kv[0]))]
            paths.append(_heatmaps(panels, f"CKA between the {unit}s of one model — {dataset}",
                                   Path(out_dir) / f"cka_within_{slug(dataset)}.png"))
        across = across_run_cka(rows, dataset)
        if across:
            panels = []
            # with many groups keep the informative pairs first: seed vs seed, then everything against E2E
            pairs = sorted(across, key=lambda p: (p[0] != p[1] and REFERENCE not in (p[0].regime, p[1].regime),
                                                  p[0] != p[1], group_sort_key(p[0]), group_sort_key(p[1])))
            shown = pairs[:max_pairs]
            for ga, gb in sorted(shown, key=lambda p: (group_sort_key(p[0]), group_sort_key(p[1]))):
                m, n = across[(ga, gb)]
                same = ga == gb
                title = (f"{styler.label(ga)}: seed vs seed" if same else f"{styler.label(ga)} vs {styler.label(gb)}")
                title += f"\n(mean of {n} run pairs)" if n > 1 else ""
                panels.append((title, m, f"Block — {styler.label(ga)}", f"Block — {styler.label(gb)}"))
            more = f" ({len(shown)} of {len(pairs)} group pairs)" if len(shown) < len(pairs) else ""
            paths.append(_heatmaps(panels, f"CKA between the blocks of two runs — {dataset}{more}",
                                   Path(out_dir) / f"cka_across_{slug(dataset)}.png"))
    return paths
