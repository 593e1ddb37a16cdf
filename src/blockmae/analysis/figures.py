"""The analysis figures, drawn from tidy metric rows alone (the rows of `metrics.jsonl`).

Every `fig_*` function takes the rows and an output folder, writes PNGs (150 dpi) and returns
their paths; it returns `[]` and writes nothing when the rows lack what it needs. Runs that
share (model, regime, K) form a *group*: their seeds are shown as the mean with a 95%
t-interval (no band for a group of one). Colours follow the regime in every figure; marker
follows K, line style follows the model; the random-initialisation floor is dashed grey.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through
pyplot, so importing this module changes no global backend and leaks no open figures.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

DPI = 150
REGIME_ORDER = ["e2e", "simultaneous", "sequential", "deep-supervision", "pretrained", "random"]
# Okabe-Ito colours (colour-blind safe); the random floor is neutral grey.
REGIME_COLORS = {"e2e": "#0072B2", "simultaneous": "#E69F00", "sequential": "#009E73",
                 "deep-supervision": "#CC79A7", "pretrained": "#D55E00", "random": "#7F7F7F"}
REGIME_NAMES = {"e2e": "E2E", "simultaneous": "Simultaneous", "sequential": "Sequential",
                "deep-supervision": "Deep supervision", "pretrained": "Pretrained", "random": "Random init"}
_EXTRA_COLORS = ["#56B4E9", "#F0E442", "#882255", "#44AA99", "#999933", "#AA4499"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
_MODEL_STYLES = ["-", ":", "-.", (0, (5, 1, 1, 1))]
_HATCHES = ["", "///", "xxx", "...", "\\\\\\", "ooo"]

# metric -> (axis label, scale applied to values, bounds of the unscaled value): accuracies are stored as
# fractions and shown in %; CI bands are clipped to the bounds.
METRICS = {
    "probe_acc": ("Linear-probe accuracy (%)", 100.0, (0.0, 1.0)),
    "knn_acc": ("kNN accuracy (%)", 100.0, (0.0, 1.0)),
    "retrieval_map": ("Retrieval mAP (0-1)", 1.0, (0.0, 1.0)),
    "recon_loss": ("Masked reconstruction MSE", 1.0, (0.0, math.inf)),
    "cka_linear": ("Linear CKA (0-1)", 1.0, (0.0, 1.0)),
    "cka_rbf": ("RBF CKA (0-1)", 1.0, (0.0, 1.0)),
    "token_similarity": ("Token similarity (mean cosine)", 1.0, (-1.0, 1.0)),
    "occlusion_drop": ("Occlusion drop (% of full acc.)", 100.0, (-math.inf, 1.0)),
}
_STYLE = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8, "legend.title_fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6, "lines.linewidth": 1.6, "lines.markersize": 4.5,
    "figure.facecolor": "white", "savefig.facecolor": "white", "figure.titlesize": 11,
}
CI_NOTE = "mean ± 95% CI over seeds"


# ---------------------------------------------------------------------------------------------- statistics
@lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t distribution (scipy when installed, else numerical integration)."""
    try:
        from scipy.stats import t
        return float(t.ppf(p, df))
    except ImportError:
        return _t_quantile_numeric(p, df)


def _t_quantile_numeric(p: float, df: int) -> float:
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -_t_quantile_numeric(1 - p, df)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float) -> float:  # Simpson's rule on the density from 0 to x, plus the lower half
        grid = np.linspace(0.0, x, 4001)
        pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(grid ** 2 / df))
        h = grid[1] - grid[0]
        return 0.5 + h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, hi * 2
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def mean_ci(values, level: float = 0.95) -> tuple[float, float, int]:
    """(mean, half-width of the t-interval, n); the half-width is nan for fewer than two values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    if n == 1:
        return float(v[0]), math.nan, 1
    half = t_quantile(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n)
    return float(v.mean()), float(half), n


# ---------------------------------------------------------------------------------------------- rows
class Group(NamedTuple):
    """Runs that differ only by seed."""
    model: str
    regime: str
    K: int | None


def group_of(row: dict) -> Group:
    return Group(str(row.get("model")), str(row.get("regime")), row.get("K"))


def group_sort_key(g: Group):
    regime = REGIME_ORDER.index(g.regime) if g.regime in REGIME_ORDER else len(REGIME_ORDER)
    return (g.model, regime, g.regime, g.K if g.K is not None else -1)


def final_rows(rows: list[dict]) -> list[dict]:
    """Rows about final models (step unset), one named split per dataset ('test' when there are several;
    rows without a split, such as cross-run CKA, are always kept)."""
    rows = [r for r in rows if r.get("step") is None]
    splits = defaultdict(set)
    for r in rows:
        if r.get("split") is not None:
            splits[r.get("dataset")].add(r["split"])
    keep = {d: ("test" if "test" in s else sorted(s)[0]) for d, s in splits.items() if len(s) > 1}
    return [r for r in rows if r.get("dataset") not in keep or r.get("split") in (None, keep[r.get("dataset")])]


def ordered(values) -> list:
    """Unique values in order of first appearance."""
    return list(dict.fromkeys(values))


def datasets_of(rows: list[dict]) -> list[str]:
    return ordered(r.get("dataset") for r in rows)


def targets_of(rows: list[dict]) -> list[str]:
    """'mean' first, then the label targets in order of first appearance."""
    names = ordered(r.get("target", "mean") for r in rows)
    return (["mean"] if "mean" in names else []) + [t for t in names if t != "mean"]


def _is_pair(r: dict) -> bool:
    return r.get("block2") is not None or r.get("layer2") is not None or r.get("run2") is not None


def select(rows: list[dict], metric: str, unit: str = "block", *, dataset=None, target="mean",
           pairs: bool = False) -> list[dict]:
    """Rows of one metric indexed by `unit` ('block' or 'layer'); `pairs` keeps only cross-unit rows."""
    other = "layer" if unit == "block" else "block"
    return [r for r in rows if r.get("metric") == metric and r.get(unit) is not None and r.get(other) is None
            and (dataset is None or r.get("dataset") == dataset) and (target is None or r.get("target") == target)
            and _is_pair(r) == pairs]


def series(rows: list[dict], x_key: str = "block") -> dict[Group, dict[int, list[float]]]:
    """group -> x -> one value per run (a run's duplicate rows are averaged first)."""
    per_run = defaultdict(list)
    for r in rows:
        per_run[(group_of(r), r[x_key], r.get("run"))].append(r["value"])
    out: dict[Group, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (g, x, _), vals in per_run.items():
        out[g][x].append(float(np.mean(vals)))
    return out


def final_block_values(rows: list[dict], metric: str, dataset: str, target: str = "mean") -> dict[Group, list[float]]:
    """group -> the metric at each run's last block (one value per run)."""
    sel = select(rows, metric, "block", dataset=dataset, target=target)
    last = defaultdict(int)
    for r in sel:
        last[r.get("run")] = max(last[r.get("run")], r["block"])
    per_run = defaultdict(list)
    for r in sel:
        if r["block"] == last[r.get("run")]:
            per_run[(group_of(r), r.get("run"))].append(r["value"])
    out = defaultdict(list)
    for (g, _), vals in per_run.items():
        out[g].append(float(np.mean(vals)))
    return dict(out)


def lookup_losses(rows: list[dict], dataset: str) -> list[float]:
    """Each trained run's loss of predicting each position's mean target on `dataset` (the lookup table)."""
    return [r["value"] for r in rows if r.get("metric") == "recon_loss_position_mean"
            and r.get("dataset") == dataset and r.get("regime") != "random"]


# ---------------------------------------------------------------------------------------------- styling
class Styler:
    """Colour per regime, marker per K, line style per model; identical for every figure of the same rows."""

    def __init__(self, rows: list[dict]):
        groups = {group_of(r) for r in rows}
        self.models = sorted({g.model for g in groups})
        self.Ks = sorted({g.K for g in groups if g.K is not None})
        extra = sorted({g.regime for g in groups if g.regime not in REGIME_COLORS})
        self.colors = dict(REGIME_COLORS) | {reg: _EXTRA_COLORS[i % len(_EXTRA_COLORS)] for i, reg in enumerate(extra)}

    def label(self, g: Group, model: bool = True) -> str:
        text = REGIME_NAMES.get(g.regime, g.regime)
        if g.K is not None and g.K > 1 and (g.regime != "random" or len(self.Ks) > 1):
            text += f" K={g.K}"
        if model and len(self.models) > 1:
            text = f"{g.model} · {text}"
        return text

    def color(self, g: Group) -> str:
        return self.colors.get(g.regime, "#333333")

    def marker(self, g: Group) -> str:
        return _MARKERS[self.Ks.index(g.K) % len(_MARKERS)] if g.K in self.Ks else "o"

    def hatch(self, g: Group) -> str:
        return _HATCHES[self.Ks.index(g.K) % len(_HATCHES)] if g.K in self.Ks else ""

    def line(self, g: Group) -> dict:
        style = "--" if g.regime == "random" else _MODEL_STYLES[self.models.index(g.model) % len(_MODEL_STYLES)]
        return {"color": self.color(g), "marker": self.marker(g), "linestyle": style, "label": self.label(g)}

    def handles(self, groups) -> list[Line2D]:
        return [Line2D([], [], **self.line(g)) for g in sorted(groups, key=group_sort_key)]


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "data"


def _legend(fig: Figure, handles, title: str = CI_NOTE) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside right center", title=title, frameon=False)


def _grid(fig: Figure, n: int, ncols: int):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def draw_series(ax, data: dict[Group, dict[int, list[float]]], styler: Styler, metric: str | None = None) -> set[Group]:
    """A line per group (mean over runs) with a 95% CI band where it has several runs, in the metric's units."""
    _, scale, (low, high) = METRICS.get(metric, ("", 1.0, (-math.inf, math.inf)))
    for g in sorted(data, key=group_sort_key):
        xs = sorted(data[g])
        stats = np.array([mean_ci(data[g][x])[:2] for x in xs], dtype=float)
        mean, half = stats[:, 0], stats[:, 1]
        style = styler.line(g)
        ax.plot(xs, mean * scale, **style, zorder=3 if g.regime != "random" else 2)
        if np.isfinite(half).any():
            band = np.clip(mean - half, low, high) * scale, np.clip(mean + half, low, high) * scale
            ax.fill_between(xs, *band, color=style["color"], alpha=0.18, linewidth=0, zorder=1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return set(data)


def _styled(fn: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_STYLE):
            return fn(*args, **kwargs)
    wrapper.__name__, wrapper.__doc__, wrapper.__wrapped__ = fn.__name__, fn.__doc__, fn
    return wrapper


# ---------------------------------------------------------------------------------------------- 1: final layer
@_styled
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
    fig = _new_figure(2.4 + 2.9 * len(datasets), 0.4 + 2.4 * len(metrics))
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
                    mean, half, _ = mean_ci(values[g])
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
                    ax.hlines(np.mean(floor) * scale, c - span, c + span, color=REGIME_COLORS["random"],
                              linestyle="--", linewidth=1.4, zorder=3)
                    extent.append(float(np.mean(floor)))
                    has_floor = True
            ax.set_xticks(range(len(models)), models)
            ax.set_xlim(-0.6, len(models) - 0.4)
            if metric == "recon_loss":  # what learning nothing scores: each position's mean target
                lookup = lookup_losses(rows, dataset)
                if lookup:
                    ax.axhline(np.mean(lookup) * scale, color=REGIME_COLORS["random"], linestyle=":", linewidth=1.4,
                               zorder=3)
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
        handles.append(Line2D([], [], color=REGIME_COLORS["random"], linestyle="--", label="Random init (floor)"))
    if has_lookup:
        handles.append(Line2D([], [], color=REGIME_COLORS["random"], linestyle=":",
                              label="MSE of predicting each position's mean"))
    handles += [Line2D([], [], color="black", marker="|", linestyle="", markersize=8, label="95% CI"),
                Line2D([], [], color="black", marker="o", linestyle="", alpha=0.6, markersize=3, label="one seed")]
    _legend(fig, handles, title="mean over seeds")
    fig.suptitle("Final block: probe accuracy, retrieval and reconstruction by regime, K and model")
    return [_save(fig, Path(out_dir) / "final_layer.png")]


# ---------------------------------------------------------------------------------------------- 2: depth
@_styled
def fig_depth_decodability(rows: list[dict], out_dir: Path) -> list[Path]:
    """Probe accuracy vs block (and vs layer when layer rows exist): one PNG per dataset and unit, one panel
    per target (the mean over targets first), a line per (regime, K) with CI bands, random floor dashed."""
    rows = final_rows(rows)
    styler = Styler(rows)
    paths = []
    for dataset in datasets_of(select(rows, "probe_acc", target=None) + select(rows, "probe_acc", "layer", target=None)):
        for unit in ("block", "layer"):
            sel = select(rows, "probe_acc", unit, dataset=dataset, target=None)
            if not sel:
                continue
            targets = targets_of(sel)
            ncols = min(4, len(targets))
            fig = _new_figure(2.0 + 2.9 * ncols, 0.5 + 2.4 * math.ceil(len(targets) / ncols))
            groups = set()
            for ax, target in zip(_grid(fig, len(targets), ncols), targets):
                groups |= draw_series(ax, series([r for r in sel if r.get("target") == target], unit), styler,
                                      "probe_acc")
                ax.set_title("mean over targets" if target == "mean" else target)
                ax.set_xlabel(f"{unit.capitalize()} (1 = first)")
                ax.set_ylabel("Probe accuracy (%)")
            _legend(fig, styler.handles(groups))
            fig.suptitle(f"Linear decodability vs depth ({unit}s) — {dataset}")
            paths.append(_save(fig, Path(out_dir) / f"depth_decodability_{_slug(dataset)}_{unit}.png"))
    return paths


# ---------------------------------------------------------------------------------------------- 3: losses + CKA
def _consecutive_cka(rows: list[dict], dataset: str) -> list[dict]:
    return [r for r in select(rows, "cka_linear", "block", dataset=dataset, pairs=True)
            if r.get("run2") is None and r.get("block2") == r["block"] + 1]


def cka_map_pairs(rows: list[dict], dataset: str) -> list[tuple[Group, str, int, float, float]]:
    """(group, run, k, CKA(k, k+1), mAP(k+1) - mAP(k)) for every run and block k that has both."""
    maps = {(r.get("run"), r["block"]): r["value"] for r in select(rows, "retrieval_map", dataset=dataset)}
    out = []
    for r in _consecutive_cka(rows, dataset):
        a, b = maps.get((r.get("run"), r["block"])), maps.get((r.get("run"), r["block"] + 1))
        if a is not None and b is not None:
            out.append((group_of(r), r.get("run"), r["block"], r["value"], b - a))
    return out


@_styled
def fig_stage_losses_cka(rows: list[dict], out_dir: Path) -> list[Path]:
    """Per dataset (rows): (a) per-stage reconstruction loss vs block, (b) linear CKA between consecutive blocks,
    (c) CKA(k, k+1) vs the change in retrieval mAP from block k to k+1 (one dot per run and k; least-squares line
    and Pearson r over trained runs)."""
    rows = final_rows(rows)
    styler = Styler(rows)
    datasets = [d for d in datasets_of(rows) if select(rows, "recon_loss", dataset=d) or _consecutive_cka(rows, d)]
    if not datasets:
        return []
    fig = _new_figure(13.0, 0.5 + 2.8 * len(datasets))
    axes = np.atleast_2d(fig.subplots(len(datasets), 3, squeeze=False))
    groups = set()
    for i, dataset in enumerate(datasets):
        ax_loss, ax_cka, ax_sc = axes[i]
        loss = [r for r in select(rows, "recon_loss", dataset=dataset) if r.get("regime") != "random"]
        if loss:
            groups |= draw_series(ax_loss, series(loss), styler, "recon_loss")
            ax_loss.set_xlabel("Block (stage)")
            ax_loss.set_ylabel(METRICS["recon_loss"][0])
            ax_loss.set_title(f"(a) {dataset} · per-stage loss")
        else:
            ax_loss.set_visible(False)
        cka = _consecutive_cka(rows, dataset)
        if cka:
            groups |= draw_series(ax_cka, series(cka), styler, "cka_linear")
            ticks = sorted({r["block"] for r in cka})
            ax_cka.set_xticks(ticks, [f"{k}→{k + 1}" for k in ticks])
            ax_cka.set_xlabel("Consecutive blocks k→k+1")
            ax_cka.set_ylabel(METRICS["cka_linear"][0])
            ax_cka.set_title(f"(b) {dataset} · CKA(k, k+1)")
        else:
            ax_cka.set_visible(False)
        pairs = cka_map_pairs(rows, dataset)
        if pairs:
            for g in sorted({p[0] for p in pairs}, key=group_sort_key):
                pts = np.array([(p[3], p[4]) for p in pairs if p[0] == g])
                ax_sc.scatter(pts[:, 0], pts[:, 1], color=styler.color(g), marker=styler.marker(g), s=22,
                              alpha=0.85, edgecolors="white", linewidths=0.4, zorder=3)
                groups.add(g)
            fit = np.array([(p[3], p[4]) for p in pairs if p[0].regime != "random"])
            if len(fit) >= 3 and np.ptp(fit[:, 0]) > 0 and np.ptp(fit[:, 1]) > 0:
                r = float(np.corrcoef(fit[:, 0], fit[:, 1])[0, 1])
                slope, icept = np.polyfit(fit[:, 0], fit[:, 1], 1)
                xs = np.linspace(fit[:, 0].min(), fit[:, 0].max(), 20)
                ax_sc.plot(xs, slope * xs + icept, color="black", linewidth=1.1, linestyle="-", zorder=2,
                           label=f"least squares, Pearson r = {r:.2f} (n = {len(fit)})")
                ax_sc.legend(loc="best", frameon=True, framealpha=0.85)
            ax_sc.axhline(0, color="#999999", linewidth=0.7, zorder=1)
            ax_sc.set_xlabel("Linear CKA(k, k+1)")
            ax_sc.set_ylabel("Δ retrieval mAP, block k → k+1")
            ax_sc.set_title(f"(c) {dataset} · similarity vs gain")
        else:
            ax_sc.set_visible(False)
    _legend(fig, styler.handles(groups))
    fig.suptitle("Per-stage losses, consecutive-block similarity and what it buys")
    return [_save(fig, Path(out_dir) / "stage_losses_cka.png")]


# ---------------------------------------------------------------------------------------------- 4: tokens
@_styled
def fig_tokens(rows: list[dict], out_dir: Path) -> list[Path]:
    """Per dataset (rows): occlusion drop vs block and token similarity vs layer (vs block without layer rows)."""
    rows = final_rows(rows)
    styler = Styler(rows)
    panels = []  # (dataset, metric, unit)
    for dataset in datasets_of(rows):
        row_panels = []
        if select(rows, "occlusion_drop", dataset=dataset):
            row_panels.append((dataset, "occlusion_drop", "block"))
        for unit in ("layer", "block"):
            if select(rows, "token_similarity", unit, dataset=dataset):
                row_panels.append((dataset, "token_similarity", unit))
                break
        if row_panels:
            panels.append(row_panels)
    if not panels:
        return []
    ncols = max(len(p) for p in panels)
    fig = _new_figure(2.2 + 3.6 * ncols, 0.5 + 2.7 * len(panels))
    axes = np.atleast_2d(fig.subplots(len(panels), ncols, squeeze=False))
    groups = set()
    for i, row_panels in enumerate(panels):
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(row_panels):
                ax.set_visible(False)
                continue
            dataset, metric, unit = row_panels[j]
            label = METRICS[metric][0]
            groups |= draw_series(ax, series(select(rows, metric, unit, dataset=dataset), unit), styler, metric)
            ax.set_xlabel(f"{unit.capitalize()} (1 = first)")
            ax.set_ylabel(label)
            what = "occlusion drop (one patch kept)" if metric == "occlusion_drop" else "token similarity"
            ax.set_title(f"{dataset} · {what}")
    _legend(fig, styler.handles(groups))
    fig.suptitle("Token-level diagnostics vs depth")
    return [_save(fig, Path(out_dir) / "tokens.png")]


# ---------------------------------------------------------------------------------------------- 5: CKA heatmaps
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
    fig = _new_figure(1.2 + 3.5 * ncols, 0.6 + 3.3 * nrows)
    image = None
    for ax, (title, m, ylabel, xlabel) in zip(_grid(fig, len(panels), ncols), panels):
        ax.grid(False)
        n0, n1 = m.shape
        image = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="equal",
                          extent=(0.5, n1 + 0.5, 0.5, n0 + 0.5), interpolation="nearest")
        step1, step0 = max(1, math.ceil(n1 / 12)), max(1, math.ceil(n0 / 12))
        ax.set_xticks(range(1, n1 + 1, step1))
        ax.set_yticks(range(1, n0 + 1, step0))
        if max(n0, n1) <= 8:
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
    return _save(fig, path)


@_styled
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
                                   Path(out_dir) / f"cka_within_{_slug(dataset)}.png"))
        across = across_run_cka(rows, dataset)
        if across:
            panels = []
            # with many groups keep the informative pairs first: seed vs seed, then everything against E2E
            pairs = sorted(across, key=lambda p: (p[0] != p[1] and "e2e" not in (p[0].regime, p[1].regime),
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
                                   Path(out_dir) / f"cka_across_{_slug(dataset)}.png"))
    return paths


# ---------------------------------------------------------------------------------------------- 6: dynamics
@_styled
def fig_learning_dynamics(rows: list[dict], out_dir: Path) -> list[Path]:
    """Final-block probe accuracy, retrieval mAP and reconstruction loss at each saved checkpoint (rows with a
    step), per dataset (rows) and metric (columns); a line per (regime, K), seeds aggregated per step."""
    dyn = [r for r in rows if r.get("step") is not None and r.get("target", "mean") == "mean"
           and r.get("metric") in ("probe_acc", "retrieval_map", "recon_loss") and r.get("block") is not None
           and not _is_pair(r)]
    if not dyn:
        return []
    styler = Styler(rows)
    metrics = [m for m in ("probe_acc", "retrieval_map", "recon_loss") if any(r["metric"] == m for r in dyn)]
    datasets = datasets_of(dyn)
    fig = _new_figure(2.2 + 3.4 * len(metrics), 0.5 + 2.6 * len(datasets))
    axes = np.atleast_2d(fig.subplots(len(datasets), len(metrics), squeeze=False))
    groups = set()
    for i, dataset in enumerate(datasets):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            sel = [r for r in dyn if r["dataset"] == dataset and r["metric"] == metric]
            last = defaultdict(int)
            for r in sel:
                last[r.get("run")] = max(last[r.get("run")], r["block"])
            sel = [r for r in sel if r["block"] == last[r.get("run")]]
            if not sel:
                ax.set_visible(False)
                continue
            groups |= draw_series(ax, series(sel, "step"), styler, metric)
            label = METRICS[metric][0]
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
            ax.set_xlabel("Training step")
            ax.set_ylabel(label)
            ax.set_title(f"{dataset} · final block")
    _legend(fig, styler.handles(groups))
    fig.suptitle("Learning dynamics: final-block metrics at saved checkpoints")
    return [_save(fig, Path(out_dir) / "learning_dynamics.png")]


# ---------------------------------------------------------------------------------------------- 7: reconstructions
def _strip(clip: np.ndarray, frames: list[int]) -> np.ndarray:
    """Chosen frames of a (T, H, W, C) clip side by side, a thin white gap between, values clipped to [0, 1]."""
    clip = np.clip(np.nan_to_num(np.asarray(clip, dtype=np.float32)), 0.0, 1.0)
    if clip.ndim == 3:
        clip = clip[..., None]
    if clip.shape[-1] == 2 or clip.shape[-1] > 3:
        clip = clip[..., :3] if clip.shape[-1] > 3 else clip.mean(-1, keepdims=True)
    gap = np.ones((clip.shape[1], max(1, clip.shape[2] // 16), clip.shape[3]), np.float32)
    parts = []
    for f in frames:
        parts += [clip[min(f, clip.shape[0] - 1)], gap]
    return np.concatenate(parts[:-1], axis=1)


@_styled
def fig_reconstructions(samples: list[dict] | None, out_path: Path, max_rows: int = 16) -> list[Path]:
    """Rows = clips (labelled with their run), columns = input, masked input (hidden tubelets grey), then each
    stage's reconstruction; each cell shows the first and the middle frame. Returns [] without samples."""
    samples = [s for s in (samples or []) if s.get("input") is not None][:max_rows]
    if not samples:
        return []
    T = np.asarray(samples[0]["input"]).shape[0]
    frames = sorted({0, T // 2})
    K = max(len(s.get("stages") or []) for s in samples)
    cols = ["Input", "Masked input"] + [f"Stage {k} recon." for k in range(1, K + 1)]
    H, W = np.asarray(samples[0]["input"]).shape[1:3]
    cell_w = 1.25 * len(frames)
    cell_h = max(0.9, cell_w * H / (W * len(frames) * 1.06))
    fig = _new_figure(1.6 + cell_w * len(cols), 0.6 + cell_h * len(samples))
    axes = np.atleast_2d(fig.subplots(len(samples), len(cols), squeeze=False))
    for i, s in enumerate(samples):
        images = [s["input"], s.get("masked")] + list(s.get("stages") or [])
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(images) and images[j] is not None:
                strip = _strip(images[j], frames)
                if strip.shape[-1] == 1:
                    ax.imshow(strip[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                else:
                    ax.imshow(strip, interpolation="nearest")
            if i == 0:
                ax.set_title(cols[j])
        axes[i, 0].set_ylabel(str(s.get("run", "")), rotation=0, ha="right", va="center", fontsize=8)
    shown = " and ".join(str(f + 1) for f in frames)
    fig.suptitle(f"Masked reconstructions per stage (frames {shown} of {T} in each cell)")
    return [_save(fig, Path(out_path))]


# ---------------------------------------------------------------------------------------------- all
FIGURES: dict[str, Callable[[list[dict], Path], list[Path]]] = {
    "final_layer": fig_final_layer,
    "depth_decodability": fig_depth_decodability,
    "stage_losses_cka": fig_stage_losses_cka,
    "tokens": fig_tokens,
    "cka_heatmaps": fig_cka_heatmaps,
    "learning_dynamics": fig_learning_dynamics,
}


def make_all_figures(rows: list[dict], out_dir: Path, samples: list[dict] | None = None,
                     strict: bool = False) -> dict[str, list[Path]]:
    """Every figure the rows (and reconstruction samples) allow: name -> written PNGs.

    A figure that fails is reported as a warning and left out (the metrics are already on disk), unless
    `strict`.
    """
    out_dir = Path(out_dir)
    for stale in out_dir.glob("*.png") if out_dir.is_dir() else []:  # an earlier analysis's figures never linger
        stale.unlink()
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
