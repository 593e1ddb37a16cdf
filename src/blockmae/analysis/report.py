"""One self-contained HTML report: summary tables, the figures (embedded), per-block probe tables, the
protocol behind every number, the runs' configs and the timings. No scripts, no external assets."""

from __future__ import annotations

import base64
import html
import json
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

from .figures import (FIGURES, REGIME_COLORS, Group, Styler, datasets_of, final_block_values, final_rows, group_of,
                      group_sort_key, lookup_losses, mean_ci, select, series, targets_of)

# figure name -> (heading, caption: what it shows and how to read it)
CAPTIONS = {
    "final_layer": (
        "Final-block quality",
        "Each panel compares the regimes at the last block (stage output) of the encoder. Rows: linear-probe "
        "accuracy (mean over the dataset's targets), leave-one-out retrieval mAP, masked-reconstruction MSE; "
        "columns: datasets. Bars are grouped by model; colour = regime, hatching = number of blocks K. A bar is the "
        "mean over seeds, the black whisker its 95% t-interval (none for a single seed), dots the individual seeds. "
        "The dashed grey line is a randomly initialised encoder of the same shape, what training must beat (not "
        "drawn for the MSE: its decoders are untrained). "
        "The dotted grey line on the MSE panels is what predicting each position's mean target scores (learning "
        "nothing a lookup table could not). Higher is better for accuracy and mAP, lower for MSE; every axis starts "
        "at zero, so a bar's height is its value."),
    "depth_decodability": (
        "Decodability vs depth",
        "Linear-probe accuracy at the output of every block (and every layer where layer rows exist), one panel "
        "per target; the first panel is the mean over targets. One line per (regime, K) with its 95% CI band over "
        "seeds; the dashed grey line is the random-init floor. A line that rises early and then flattens means "
        "the information is decodable early but later blocks add little; a line that keeps rising keeps "
        "building it. Block indices of different K cover different depths."),
    "stage_losses_cka": (
        "Per-stage losses, consecutive-block CKA, and CKA vs retrieval gain",
        "(a) Masked-reconstruction MSE of each stage's decoder on held-out clips (E2E: its monitor decoders; "
        "random init not shown, its decoders are untrained); a flat line means late stages reconstruct no "
        "better than early ones. (b) Linear CKA between the pooled "
        "features of blocks k and k+1: values near 1 mean block k+1 barely changes the representation. "
        "(c) One dot per run and block pair: CKA(k, k+1) against the change in retrieval mAP from block k to "
        "k+1, with the least-squares line and Pearson r over trained runs (random init excluded from the fit). "
        "A negative slope means blocks that change the representation more gain more retrieval quality."),
    "tokens": (
        "Token-level diagnostics",
        "Left: occlusion drop, the relative loss of probe accuracy when the clip keeps a single 16x16 patch "
        "(two for two-region gratings) — higher means the block's pooled feature relies on more of the clip. "
        "Right: token similarity, the mean cosine between the layer-normalised tokens of one clip — higher means "
        "tokens look more alike (less spatially specific). Lines: mean over seeds with 95% CI bands."),
    "cka_heatmaps": (
        "CKA heatmaps",
        "Linear CKA between the pooled features of every pair of layers (or blocks) within one model — averaged "
        "over a group's seeds — and between the blocks of two different runs (row = first run's block, column = "
        "second run's block). Bright = similar (1 = identical up to rotation and scale). A bright block-diagonal "
        "square means a run of layers that compute nearly the same representation; across runs, a bright "
        "diagonal means the two runs develop in step."),
    "learning_dynamics": (
        "Learning dynamics",
        "Final-block metrics at every saved checkpoint of each run (x = training step), mean over seeds with a "
        "95% CI band where the seeds share the step. Shows whether a regime is still improving or has converged, "
        "and whether reconstruction loss and representation quality move together."),
    "reconstructions": (
        "Reconstructions",
        "Rows: clips (labelled with the run and dataset); columns: the input, the masked input (hidden tubelets "
        "grey), then each stage's decoder output with the visible tubelets pasted back. Each cell shows the first "
        "and the middle frame. With normalised-pixel targets the predictions are mapped back with the true "
        "tubelet's mean and std, so the pattern, not the brightness, is what each stage predicted."),
}

_CSS = """
:root { --fg: #1d232a; --muted: #5b6672; --line: #d9dee3; --bg-alt: #f4f6f8; --accent: #0072B2; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1280px; padding: 18px 28px 60px; }
h1 { font-size: 24px; margin: 4px 0 2px; }
h2 { font-size: 19px; margin: 34px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15.5px; margin: 22px 0 6px; }
p, li { max-width: 980px; }
.meta { color: var(--muted); margin: 0 0 10px; }
nav { background: var(--bg-alt); border-radius: 6px; padding: 8px 14px; margin: 12px 0; font-size: 13px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: var(--bg-alt); font-weight: 600; text-align: center; }
td.label, th.label { text-align: left; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td.best { font-weight: 700; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px;
          vertical-align: baseline; }
.floor td { color: var(--muted); font-style: italic; }
figure { margin: 10px 0 26px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; max-width: 980px; }
figcaption code, .file { font-size: 11.5px; color: var(--muted); }
.caption { max-width: 980px; }
details { border: 1px solid var(--line); border-radius: 5px; padding: 4px 10px; margin: 6px 0; }
details > summary { cursor: pointer; font-weight: 600; }
pre { background: var(--bg-alt); padding: 8px 10px; border-radius: 4px; font-size: 12px; overflow-x: auto; }
dl.protocol dt { font-weight: 600; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; margin-top: 8px; }
dl.protocol dd { margin: 2px 0 0 18px; max-width: 980px; }
.note { color: var(--muted); font-size: 12.5px; }
td.bad { color: #b00020; font-weight: 600; }
ul.warn, p.warn { color: #b00020; }
"""


# ---------------------------------------------------------------------------------------------- formatting
def _e(text) -> str:
    return html.escape(str(text), quote=True)


def format_stat(mean: float, half: float, scale: float = 1.0, digits: int = 3) -> str:
    """'mean ± half' (the half-width of the 95% interval), or just the mean for a single run."""
    if mean is None or not math.isfinite(mean):
        return "–"
    text = f"{mean * scale:.{digits}f}"
    if half is not None and math.isfinite(half):
        text += f" ± {half * scale:.{digits}f}"
    return text


# metric -> (column heading, scale, decimals, higher is better)
_SUMMARY = {
    "probe_acc": ("probe acc. (%)", 100.0, 1, True),
    "retrieval_map": ("retrieval mAP", 1.0, 3, True),
    "recon_loss": ("recon. MSE", 1.0, 3, False),
}


def _yaml(value, indent: int = 0) -> list[str]:
    """A YAML-like rendering of a nested config (for reading, not for parsing back)."""
    pad = "  " * indent

    def scalar(v) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        s = str(v)
        plain = s and s.strip() == s and not any(c in s for c in ":#{}[],&*!|>'\"%@`") and s.lower() not in (
            "null", "true", "false", "yes", "no", "~")
        try:
            float(s)
            plain = False
        except ValueError:
            pass
        return s if plain else json.dumps(s)

    def simple(v) -> bool:
        return not isinstance(v, (dict, list, tuple)) or (isinstance(v, (list, tuple)) and all(
            not isinstance(x, (dict, list, tuple)) for x in v)) or len(v) == 0

    def inline(v) -> str:
        if isinstance(v, dict):
            return "{}"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        return scalar(v)

    lines = []
    if isinstance(value, dict):
        for k, v in value.items():
            if simple(v):
                lines.append(f"{pad}{k}: {inline(v)}")
            else:
                lines.append(f"{pad}{k}:")
                lines += _yaml(v, indent + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            if simple(v):
                lines.append(f"{pad}- {inline(v)}")
            else:
                sub = _yaml(v, indent + 1)
                lines.append(f"{pad}- {sub[0].strip()}")
                lines += sub[1:]
    else:
        lines.append(pad + scalar(value))
    return lines


def _group_cell(styler: Styler, g: Group) -> str:
    color = REGIME_COLORS.get(g.regime, styler.color(g))
    return f'<td class="label"><span class="swatch" style="background:{_e(color)}"></span>{_e(styler.label(g))}</td>'


def _row(g: Group, cells: list[str]) -> str:
    return ('<tr class="floor">' if g.regime == "random" else "<tr>") + "".join(cells) + "</tr>"


def _best(values: dict[Group, float], higher: bool) -> set[Group]:
    """The trained groups with the best mean (ties included); nothing when there is only one."""
    trained = {g: v for g, v in values.items() if g.regime != "random" and v is not None and math.isfinite(v)}
    if len(trained) < 2:
        return set()
    target = max(trained.values()) if higher else min(trained.values())
    return {g for g, v in trained.items() if math.isclose(v, target, rel_tol=0, abs_tol=1e-12)}


# ---------------------------------------------------------------------------------------------- sections
def _summary_table(rows: list[dict], styler: Styler) -> str:
    metrics = [m for m in _SUMMARY if select(rows, m)]
    datasets = datasets_of([r for r in rows if r.get("metric") in metrics])
    if not metrics:
        return '<p class="note">No probe, retrieval or reconstruction rows.</p>'
    cells: dict[tuple[str, str], dict[Group, tuple[float, float, int]]] = {}
    for d in datasets:
        for m in metrics:
            cells[(d, m)] = {g: mean_ci(v) for g, v in final_block_values(rows, m, d).items()}
    groups = sorted({g for c in cells.values() for g in c}, key=group_sort_key)
    seeds = defaultdict(set)
    for r in rows:
        seeds[(r.get("model"), r.get("regime"), r.get("K"))].add(r.get("run"))
    head1 = '<tr><th class="label" rowspan="2">group (model · regime · K)</th><th rowspan="2">runs</th>' + "".join(
        f'<th colspan="{len(metrics)}">{_e(d)}</th>' for d in datasets) + "</tr>"
    head2 = "<tr>" + "".join(f"<th>{_e(_SUMMARY[m][0])}</th>" for _ in datasets for m in metrics) + "</tr>"
    best = {(d, m): _best({g: s[0] for g, s in cells[(d, m)].items()}, _SUMMARY[m][3]) for d in datasets for m in metrics}
    for (d, m), groups_best in best.items():  # no bold for a "best" that learning nothing matches
        floor = [s[0] for g, s in cells[(d, m)].items() if g.regime == "random"]
        if m == "recon_loss":  # the reference for a loss: predicting each position's mean target
            floor = lookup_losses(rows, d)
        higher = _SUMMARY[m][3]
        if floor and any((cells[(d, m)][g][0] <= np.mean(floor)) == higher for g in groups_best):
            groups_best.clear()
    body = []
    for g in groups:
        tds = [_group_cell(styler, g), f"<td>{len(seeds[(g.model, g.regime, g.K)])}</td>"]
        for d in datasets:
            for m in metrics:
                _, scale, digits, _ = _SUMMARY[m]
                if g in cells[(d, m)]:
                    mean, half, _ = cells[(d, m)][g]
                    cls = ' class="best"' if g in best[(d, m)] else ""
                    tds.append(f"<td{cls}>{_e(format_stat(mean, half, scale, digits))}</td>")
                else:
                    tds.append("<td>–</td>")
        body.append(_row(g, tds))
    return (f"<table><thead>{head1}{head2}</thead><tbody>{''.join(body)}</tbody></table>"
            '<p class="note">Final block of every run; probe accuracy is the mean over the dataset\'s targets, '
            "retrieval mAP likewise. Cells: mean ± half-width of the 95% t-interval over the group's runs (seeds); "
            "a single number where the group has one run. Bold: best trained group in the column, only where it beats the "
            "random-init floor. Grey italic: random-init floor.</p>")


_BASELINES = {"zero": "predict 0", "position_mean": "position mean", "visible_mean": "visible mean"}


def _run_values(rows: list[dict], metric: str, dataset: str) -> dict[Group, list[float]]:
    """group -> one value per run of a metric that is not about a block (the trivial predictors' losses)."""
    per_run = {}
    for r in rows:
        if r.get("metric") == metric and r.get("dataset") == dataset and r.get("block") is None:
            per_run[(group_of(r), r.get("run"))] = r["value"]
    out = defaultdict(list)
    for (g, _), v in per_run.items():
        out[g].append(v)
    return out


def learning_verdicts(rows: list[dict]) -> list[str]:
    """Plain sentences: per dataset, whether the trained groups beat the trivial predictors and the random floor.

    A group beats a baseline when its mean final-block loss (or probe) is better; the sentence says so when
    no trained group does, so a report never lets noise pass for learning.
    """
    rows, out = final_rows(rows), []
    for dataset in datasets_of(rows):
        losses = {g: mean_ci(v)[0] for g, v in final_block_values(rows, "recon_loss", dataset).items()
                  if g.regime != "random"}
        lookup = {g: mean_ci(v)[0] for g, v in _run_values(rows, "recon_loss_position_mean", dataset).items()}
        if losses and lookup:
            beaten = [g for g, v in losses.items() if g in lookup and v < lookup[g]]
            if not beaten:
                out.append(f"{dataset}: no trained run reconstructs better than predicting each position's mean "
                           "target: the held-out losses show no learning.")
            elif len(beaten) < len(losses):
                worse = ", ".join(f"{g.regime} K={g.K}" for g in losses if g not in beaten)
                out.append(f"{dataset}: {worse} reconstruct no better than predicting each position's mean target.")
        probes = {g: mean_ci(v) for g, v in final_block_values(rows, "probe_acc", dataset).items()}
        floor = [s[0] for g, s in probes.items() if g.regime == "random"]
        trained = {g: s for g, s in probes.items() if g.regime != "random"}
        if floor and trained:
            above = [g for g, (mean, half, n) in trained.items()
                     if mean - (half if n > 1 and math.isfinite(half) else 0.0) > floor[0]]
            if not above:
                out.append(f"{dataset}: no trained run's final-block probe beats the random-init encoder "
                           f"({100 * floor[0]:.1f}%) beyond its interval.")
    return out


def _learning_table(rows: list[dict], styler: Styler) -> str:
    """Final-block held-out loss beside the trivial predictors on the same clips and masks, per dataset."""
    parts = []
    for dataset in datasets_of(select(rows, "recon_loss", dataset=None)):
        losses = final_block_values(rows, "recon_loss", dataset)
        base = {k: _run_values(rows, f"recon_loss_{k}", dataset) for k in _BASELINES}
        head = ('<tr><th class="label">group</th><th>held-out MSE (final block)</th>'
                + "".join(f"<th>{_e(v)}</th>" for v in _BASELINES.values()) + "<th>MSE / position mean</th></tr>")
        body = []
        for g in sorted(losses, key=group_sort_key):
            if g.regime == "random":
                continue
            mean, half, _ = mean_ci(losses[g])
            trivial = {k: mean_ci(base[k].get(g, []))[0] for k in _BASELINES}
            ratio = mean / trivial["position_mean"] if trivial["position_mean"] else math.nan
            cls = ' class="bad"' if not ratio < 1 else ""
            body.append(_row(g, [_group_cell(styler, g), f"<td>{_e(format_stat(mean, half, 1.0, 4))}</td>"]
                             + [f"<td>{_e(format_stat(trivial[k], math.nan, 1.0, 4))}</td>" for k in _BASELINES]
                             + [f"<td{cls}>{ratio:.3f}</td>"]))
        parts.append(f"<h3>{_e(dataset)}</h3><table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")
    verdicts = learning_verdicts(rows)
    if verdicts:
        parts.append('<ul class="warn">' + "".join(f"<li>{_e(v)}</li>" for v in verdicts) + "</ul>")
    return "".join(parts) + (
        '<p class="note">The trivial predictors are scored on the same held-out clips and tube masks as the models: '
        "<i>predict 0</i> (the mean of a normalised tubelet), <i>position mean</i> (each token position's mean target "
        "over the evaluated clips: a lookup table) and <i>visible mean</i> (every hidden tubelet predicted as the mean "
        "of the clip's visible ones: a copy). A ratio at or above 1 (red) means the model has learned nothing a lookup "
        "table could not.</p>")


def _depth_tables(rows: list[dict], styler: Styler, unit: str) -> str:
    out = []
    for dataset in datasets_of(select(rows, "probe_acc", unit, target=None)):
        sel = select(rows, "probe_acc", unit, dataset=dataset, target=None)
        n_units = max(r[unit] for r in sel)
        head = ('<tr><th class="label">target</th><th class="label">group</th>'
                + "".join(f"<th>{unit} {k}</th>" for k in range(1, n_units + 1)) + "</tr>")
        body = []
        for target in targets_of(sel):
            data = series([r for r in sel if r.get("target") == target], unit)
            groups = sorted(data, key=group_sort_key)
            stats = {g: {k: mean_ci(v) for k, v in data[g].items()} for g in groups}
            best = {k: _best({g: stats[g][k][0] for g in groups if k in stats[g]}, True) for k in range(1, n_units + 1)}
            for k, groups_best in best.items():  # no bold where the random-init encoder is as good
                floor = [stats[g][k][0] for g in groups if g.regime == "random" and k in stats[g]]
                if floor and any(stats[g][k][0] <= floor[0] for g in groups_best):
                    groups_best.clear()
            for i, g in enumerate(groups):
                tds = []
                if i == 0:
                    name = "mean over targets" if target == "mean" else target
                    tds.append(f'<td class="label" rowspan="{len(groups)}"><b>{_e(name)}</b></td>')
                tds.append(_group_cell(styler, g))
                for k in range(1, n_units + 1):
                    if k in stats[g]:
                        mean, half, _ = stats[g][k]
                        cls = ' class="best"' if g in best[k] else ""
                        tds.append(f"<td{cls}>{_e(format_stat(mean, half, 100.0, 1))}</td>")
                    else:
                        tds.append("<td></td>")
                body.append(_row(g, tds))
        out.append(f'<h3>{_e(dataset)}</h3><table><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>')
    return "".join(out)


def _figure_html(name: str, paths: list[Path]) -> str:
    title, caption = CAPTIONS.get(name, (name.replace("_", " ").capitalize(), ""))
    parts = [f'<h3 id="fig-{_e(name)}">{_e(title)}</h3>']
    if caption:
        parts.append(f'<p class="caption">{_e(caption)}</p>')
    for path in paths:
        path = Path(path)
        if not path.exists():
            parts.append(f'<p class="note">Missing figure file {_e(path.name)}.</p>')
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{_e(title)}: {_e(path.stem)}">'
                     f'<figcaption><span class="file">{_e(path.name)}</span></figcaption></figure>')
    return "".join(parts)


def _runs_html(runs: list[dict]) -> str:
    items = []
    for run in runs:
        seed = run.get("seed")
        summary = " · ".join(str(x) for x in (run.get("regime"), f"K={run.get('K')}" if run.get("K") is not None else None,
                                                f"seed {seed}" if seed is not None else None, run.get("model")) if x)
        config = run.get("config") or {}
        items.append(f"<details><summary>{_e(run.get('run', '?'))} <span class=\"note\">— {_e(summary)}</span></summary>"
                     f"<p class=\"note\">path: <code>{_e(run.get('path', ''))}</code></p>"
                     f"<pre>{_e(chr(10).join(_yaml(config)) or '(no config)')}</pre></details>")
    return "".join(items) or '<p class="note">No runs given.</p>'


def _protocol_html(protocol: dict[str, str]) -> str:
    items = [f"<dt>{_e(metric)}</dt><dd>{_e(text)}</dd>" for metric, text in protocol.items()]
    items.append("<dt>aggregation</dt><dd>Runs that share model, regime and K form a group; a group's number is "
                 "the mean over its runs (seeds) with the half-width of the 95% Student-t interval "
                 "(t<sub>0.975, n-1</sub> · s / √n); no interval for a group of one run. Final block = each run's "
                 "last block. Accuracies are fractions of 1 in the data and shown in %.</dd>")
    return f'<dl class="protocol">{"".join(items)}</dl>'


def _timings_html(timings: dict[str, float]) -> str:
    def fmt(s: float) -> str:
        return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"

    body = "".join(f'<tr><td class="label">{_e(k)}</td><td>{_e(fmt(float(v)))}</td></tr>' for k, v in timings.items())
    return (f'<table><thead><tr><th class="label">step</th><th>wall time</th></tr></thead><tbody>{body}</tbody>'
            "</table>")


# ---------------------------------------------------------------------------------------------- report
def write_report(out_dir: Path, rows: list[dict], figures: dict[str, list[Path]], runs: list[dict],
                 protocol: dict[str, str], timings: dict[str, float] | None = None) -> Path:
    """Write `out_dir/report.html` (self-contained: figures as data URIs, inline CSS) and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = final_rows(rows)
    styler = Styler(rows)
    run_names = list(dict.fromkeys(r.get("run") for r in rows if r.get("run2") is None))
    datasets = datasets_of(rows)
    regimes = list(dict.fromkeys(r.get("regime") for r in rows))
    models = list(dict.fromkeys(r.get("model") for r in rows))
    metrics = sorted({r.get("metric") for r in rows})
    n_steps = len({r.get("step") for r in rows if r.get("step") is not None})
    order = list(FIGURES) + ["reconstructions"]
    shown = [(name, figures[name]) for name in order if figures.get(name)]
    shown += [(name, paths) for name, paths in figures.items() if name not in order and paths]

    sections = [("summary", "Summary")]
    if select(final, "recon_loss"):
        sections.append(("learning", "Did training learn?"))
    if shown:
        sections.append(("figures", "Figures"))
    if select(final, "probe_acc", target=None):
        sections.append(("depth", "Probe accuracy by block"))
    sections += [("protocol", "Protocol"), ("runs", "Runs")]
    if timings:
        sections.append(("timings", "Timings"))

    when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>blockmae analysis report</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>blockmae analysis report</h1>",
        f'<p class="meta">Generated {_e(when)} · {len(run_names)} runs ({_e(", ".join(map(str, regimes)))}) · '
        f'models: {_e(", ".join(map(str, models)))} · datasets: {_e(", ".join(map(str, datasets)))} · '
        f"{len(rows)} metric rows{f' ({n_steps} checkpoint steps)' if n_steps else ''}.</p>",
        f'<p class="meta">Runs: {_e(", ".join(map(str, run_names)))}.</p>',
        f'<p class="meta">Metrics: {_e(", ".join(str(m) for m in metrics))}.</p>',
        "<nav>" + "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title in sections) + "</nav>",
        '<h2 id="summary">Summary: final block</h2>', _summary_table(final, styler),
    ]
    left_out = [r for r in rows if r.get("metric") == "clips_left_out" and r.get("step") is None]
    if left_out:
        seen = {}
        for r in left_out:  # the same clips for every source: once per dataset and split
            seen.setdefault((r.get("dataset"), r.get("split")), r)
        parts.append('<p class="warn">Unreadable clips were left out of every metric (each readable clip is used '
                     "exactly once): " + "; ".join(
                         f"{_e(d)} ({_e(sp)}): {int(r['value'])}: {_e(', '.join(r.get('files', [])[:5]))}"
                         for (d, sp), r in seen.items()) + ".</p>")
    if select(final, "recon_loss"):
        parts += ['<h2 id="learning">Did training learn? Losses beside the trivial predictors</h2>',
                  _learning_table(final, styler)]
    if shown:
        parts.append('<h2 id="figures">Figures</h2>')
        parts.append("<p>" + " · ".join(f'<a href="#fig-{_e(n)}">{_e(CAPTIONS.get(n, (n,))[0])}</a>'
                                        for n, _ in shown) + "</p>")
        parts += [_figure_html(name, paths) for name, paths in shown]
    if select(final, "probe_acc", target=None):
        parts.append('<h2 id="depth">Linear-probe accuracy by block</h2>'
                     '<p class="note">Per dataset and target, accuracy (%) at the output of every block: mean ± 95% CI '
                     "half-width over seeds. Bold: best trained group at that block.</p>")
        parts.append(_depth_tables(final, styler, "block"))
        if select(final, "probe_acc", "layer", target=None):
            parts.append("<details><summary>By layer</summary>" + _depth_tables(final, styler, "layer") + "</details>")
    parts += ['<h2 id="protocol">Protocol of every number</h2>', _protocol_html(protocol)]
    parts += ['<h2 id="runs">Runs</h2>',
              f'<p class="note">Sources analysed: {len(runs)}. Expand one for its resolved configuration.</p>',
              _runs_html(runs)]
    if timings:
        parts += ['<h2 id="timings">Timings</h2>', _timings_html(timings)]
    parts.append("</body></html>")
    path = out_dir / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
