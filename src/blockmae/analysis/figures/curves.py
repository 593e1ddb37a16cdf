"""The line figures: a metric against depth or training step, a line per group of runs with its 95% CI band over
seeds, the random-init floor dashed grey with its band, chance dotted on probe panels, the trivial predictors on
loss panels. Depth by block is relative (block k of K at k/K), so runs of different K share the axis; by layer it
is the layer index."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..rows import (Group, consecutive_pairs, datasets_of, final_block_values, final_rows, group_of, group_sort_key,
                    is_pair, last_block, select, series, targets_of, with_depth)
from .references import (draw_chance, draw_floor, draw_loss_baselines, floor_values, reference_handles,
                         series_extent)
from .style import (METRICS, Styler, draw_depth_series, draw_pair_panel, draw_series, draw_unit_series, grid, legend,
                    new_figure, save, slug, styled)


# probe metric -> (the probe's name in the title, file-name prefix) of its decodability figures
DECODABILITY = {"probe_acc": ("Linear", "depth_decodability"),
                "attentive_probe_acc": ("Attentive-probe", "depth_decodability_attentive")}


@styled
def fig_depth_decodability(rows: list[dict], out_dir: Path) -> list[Path]:
    """Probe accuracy (linear, and attentive where its rows exist: `DECODABILITY`) vs relative depth by block (and
    vs layer when layer rows exist): one PNG per probe, dataset and unit, one panel per target (the mean over
    targets first), a line per (regime, K) with CI bands, the random floor dashed with its band, chance (the
    target's majority class) dotted."""
    rows = final_rows(rows)
    styler = Styler(rows)
    paths = []
    for metric, dataset in [(m, d) for m in DECODABILITY
                            for d in datasets_of(select(rows, m, target=None) + select(rows, m, "layer", target=None))]:
        for unit in ("block", "layer"):
            sel = select(rows, metric, unit, dataset=dataset, target=None)
            if not sel:
                continue
            targets = targets_of(sel)
            ncols = min(4, len(targets))
            fig = new_figure(2.0 + 2.9 * ncols, 0.5 + 2.4 * math.ceil(len(targets) / ncols))
            groups, chance = set(), False
            for ax, target in zip(grid(fig, len(targets), ncols), targets):
                groups |= draw_unit_series(ax, [r for r in sel if r.get("target") == target], unit, styler,
                                           metric)
                chance |= draw_chance(ax, rows, dataset, target) is not None
                ax.set_title("mean over targets" if target == "mean" else target)
                ax.set_ylabel("Probe accuracy (%)")
            legend(fig, styler.handles(groups) + reference_handles((), chance=chance))
            probe, prefix = DECODABILITY[metric]
            fig.suptitle(f"{probe} decodability vs depth ({unit}s) — {dataset}")
            paths.append(save(fig, Path(out_dir) / f"{prefix}_{slug(dataset)}_{unit}.png"))
    return paths


def consecutive_cka(rows: list[dict], dataset: str) -> list[dict]:
    """Linear CKA rows between blocks k and k+1 of one run."""
    return consecutive_pairs(rows, "cka_linear", dataset)


def cka_map_pairs(rows: list[dict], dataset: str) -> list[tuple[Group, str, int, float, float]]:
    """(group, run, k, CKA(k, k+1), mAP(k+1) - mAP(k)) for every run and block k that has both."""
    maps = {(r.get("run"), r["block"]): r["value"] for r in select(rows, "retrieval_map", dataset=dataset)}
    out = []
    for r in consecutive_cka(rows, dataset):
        a, b = maps.get((r.get("run"), r["block"])), maps.get((r.get("run"), r["block"] + 1))
        if a is not None and b is not None:
            out.append((group_of(r), r.get("run"), r["block"], r["value"], b - a))
    return out


def _similarity_vs_gain(ax, pairs, styler: Styler, dataset: str) -> set[Group]:
    """Panel (c): one dot per run and block pair, the least-squares line and Pearson r over trained runs."""
    groups = set()
    for g in sorted({p[0] for p in pairs}, key=group_sort_key):
        pts = np.array([(p[3], p[4]) for p in pairs if p[0] == g])
        ax.scatter(pts[:, 0], pts[:, 1], color=styler.color(g), marker=styler.marker(g), s=22,
                   alpha=0.85, edgecolors="white", linewidths=0.4, zorder=3)
        groups.add(g)
    fit = np.array([(p[3], p[4]) for p in pairs if p[0].regime != "random"])
    if len(fit) >= 3 and np.ptp(fit[:, 0]) > 0 and np.ptp(fit[:, 1]) > 0:
        r = float(np.corrcoef(fit[:, 0], fit[:, 1])[0, 1])
        slope, icept = np.polyfit(fit[:, 0], fit[:, 1], 1)
        xs = np.linspace(fit[:, 0].min(), fit[:, 0].max(), 20)
        ax.plot(xs, slope * xs + icept, color="black", linewidth=1.1, linestyle="-", zorder=2,
                label=f"least squares, Pearson r = {r:.2f} (n = {len(fit)})")
        ax.legend(loc="best", frameon=True, framealpha=0.85)
    ax.axhline(0, color="#999999", linewidth=0.7, zorder=1)
    ax.set_xlabel("Linear CKA(k, k+1)")
    ax.set_ylabel("Δ retrieval mAP, block k → k+1")
    ax.set_title(f"(c) {dataset} · similarity vs gain")
    return groups


@styled
def fig_stage_losses_cka(rows: list[dict], out_dir: Path) -> list[Path]:
    """Per dataset (rows): (a) per-stage reconstruction loss vs relative depth beside the trivial predictors, (b)
    linear CKA between consecutive blocks, (c) CKA(k, k+1) vs the change in retrieval mAP from block k to k+1 (one
    dot per run and k; least-squares line and Pearson r over trained runs)."""
    rows = final_rows(rows)
    styler = Styler(rows)
    datasets = [d for d in datasets_of(rows) if select(rows, "recon_loss", dataset=d) or consecutive_cka(rows, d)]
    if not datasets:
        return []
    fig = new_figure(13.0, 0.5 + 2.8 * len(datasets))
    axes = np.atleast_2d(fig.subplots(len(datasets), 3, squeeze=False))
    groups, loss_keys = set(), set()
    for i, dataset in enumerate(datasets):
        ax_loss, ax_cka, ax_sc = axes[i]
        loss = [r for r in select(rows, "recon_loss", dataset=dataset) if r.get("regime") != "random"]
        if loss:
            groups |= draw_depth_series(ax_loss, loss, styler, "recon_loss")
            shown = series_extent(series(with_depth(loss), "depth"))
            loss_keys.update(draw_loss_baselines(ax_loss, rows, dataset, shown))
            ax_loss.set_ylabel(METRICS["recon_loss"][0])
            ax_loss.set_title(f"(a) {dataset} · per-stage loss")
        else:
            ax_loss.set_visible(False)
        cka = consecutive_cka(rows, dataset)
        if cka:
            groups |= draw_pair_panel(ax_cka, cka, styler, "cka_linear", f"(b) {dataset} · CKA(k, k+1)")
        else:
            ax_cka.set_visible(False)
        pairs = cka_map_pairs(rows, dataset)
        if pairs:
            groups |= _similarity_vs_gain(ax_sc, pairs, styler, dataset)
        else:
            ax_sc.set_visible(False)
    legend(fig, styler.handles(groups) + reference_handles(loss_keys))
    fig.suptitle("Per-stage losses, consecutive-block similarity and what it buys")
    return [save(fig, Path(out_dir) / "stage_losses_cka.png")]


@styled
def fig_tokens(rows: list[dict], out_dir: Path) -> list[Path]:
    """Per dataset (rows): occlusion drop vs relative depth and token similarity vs layer (vs relative depth
    without layer rows)."""
    rows = final_rows(rows)
    styler = Styler(rows)
    panels = []  # per dataset: [(dataset, metric, unit)]
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
    fig = new_figure(2.2 + 3.6 * ncols, 0.5 + 2.7 * len(panels))
    axes = np.atleast_2d(fig.subplots(len(panels), ncols, squeeze=False))
    groups = set()
    for i, row_panels in enumerate(panels):
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(row_panels):
                ax.set_visible(False)
                continue
            dataset, metric, unit = row_panels[j]
            groups |= draw_unit_series(ax, select(rows, metric, unit, dataset=dataset), unit, styler, metric)
            ax.set_ylabel(METRICS[metric][0])
            what = "occlusion drop (one patch kept)" if metric == "occlusion_drop" else "token similarity"
            ax.set_title(f"{dataset} · {what}")
    legend(fig, styler.handles(groups))
    fig.suptitle("Token-level diagnostics vs depth")
    return [save(fig, Path(out_dir) / "tokens.png")]


@styled
def fig_learning_dynamics(rows: list[dict], out_dir: Path) -> list[Path]:
    """Final-block probe accuracy, retrieval mAP and reconstruction loss at each saved checkpoint (rows with a
    step), per dataset (rows) and metric (columns); a line per (regime, K), seeds aggregated per step; beside them
    the random floor's final block (probe, mAP), chance (probe) and the trivial predictors (loss)."""
    dyn = [r for r in rows if r.get("step") is not None and r.get("target", "mean") == "mean"
           and r.get("metric") in ("probe_acc", "retrieval_map", "recon_loss") and r.get("block") is not None
           and not is_pair(r)]
    if not dyn:
        return []
    styler = Styler(rows)
    metrics = [m for m in ("probe_acc", "retrieval_map", "recon_loss") if any(r["metric"] == m for r in dyn)]
    datasets = datasets_of(dyn)
    fig = new_figure(2.2 + 3.4 * len(metrics), 0.5 + 2.6 * len(datasets))
    axes = np.atleast_2d(fig.subplots(len(datasets), len(metrics), squeeze=False))
    final = final_rows(rows)
    groups, drew = set(), {"chance": False, "floor": False, "loss_keys": set()}
    for i, dataset in enumerate(datasets):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            sel = [r for r in dyn if r["dataset"] == dataset and r["metric"] == metric]
            last = last_block(sel)
            sel = [r for r in sel if r["block"] == last[r.get("run")]]
            if not sel:
                ax.set_visible(False)
                continue
            data = series(sel, "step")
            groups |= draw_series(ax, data, styler, metric)
            _dynamics_references(ax, final, metric, dataset, series_extent(data), drew)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
            ax.set_xlabel("Training step")
            ax.set_ylabel(METRICS[metric][0])
            ax.set_title(f"{dataset} · final block")
    legend(fig, styler.handles(groups) + reference_handles(drew["loss_keys"], drew["chance"], drew["floor"]))
    fig.suptitle("Learning dynamics: final-block metrics at saved checkpoints")
    return [save(fig, Path(out_dir) / "learning_dynamics.png")]


def _dynamics_references(ax, final: list[dict], metric: str, dataset: str, shown: list[float], drew: dict) -> None:
    """A loss over training beside the trivial predictors; a probe or mAP beside the random floor's final block and,
    for the probe, chance. `drew` collects what was drawn, for the legend."""
    if metric == "recon_loss":
        drew["loss_keys"].update(draw_loss_baselines(ax, final, dataset, shown))
        return
    drew["floor"] |= draw_floor(ax, floor_values(final_block_values(final, metric, dataset)), METRICS[metric][1])
    if metric == "probe_acc":
        drew["chance"] |= draw_chance(ax, final, dataset) is not None
