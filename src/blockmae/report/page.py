"""One self-contained HTML report: summary tables, the figures (embedded), per-block probe tables, the
protocol behind every number, the runs' configs and the timings. No scripts, no external assets."""

from __future__ import annotations

import base64
from datetime import datetime
from pathlib import Path

import yaml

from ..analysis.figures import CAPTIONS, FIGURES
from ..analysis.figures.style import Styler
from ..analysis.rows import datasets_of, final_rows, select
from .gap_split import gap_split_finding
from .stitching_finding import stitching_finding
from .tables import (depth_rule_table, depth_tables, escape, learning_table, probe_rule_table, saturation_table,
                     summary_table)

CSS = """
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

SATURATION = "saturation"  # the figure shown in its own section, beside its table
SATURATION_NOTE = (
    '<p class="note">The paper reads a linear CKA of 0.98-0.996 between consecutive late blocks as saturation. Plain '
    "CKA is biased upwards when clips are few relative to the feature dimension; the debiased column uses the "
    "unbiased HSIC estimator, which that bias does not touch. A plateau that holds in both columns is the "
    "representation's; one that sinks was partly the estimator's. Mutual kNN asks whether the last two blocks give "
    "each clip the same nearest neighbours. Cells: mean ± half-width of the 95% t-interval over seeds.</p>")


def _figure_html(name: str, paths: list[Path]) -> str:
    title, caption = CAPTIONS.get(name, (name.replace("_", " ").capitalize(), ""))
    parts = [f'<h3 id="fig-{escape(name)}">{escape(title)}</h3>']
    if caption:
        parts.append(f'<p class="caption">{escape(caption)}</p>')
    for path in paths:
        path = Path(path)
        if not path.exists():
            parts.append(f'<p class="note">Missing figure file {escape(path.name)}.</p>')
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{escape(title)}: {escape(path.stem)}">'
                     f'<figcaption><span class="file">{escape(path.name)}</span></figcaption></figure>')
    return "".join(parts)


def _interfaces_html(rows: list[dict]) -> str:
    """Findings 8 and 9 (stitching, frozen-base continuation) with their rules; their figures are above."""
    items = []
    for title, finding in (("Interfaces (stitching, finding 8)", stitching_finding(rows)),
                           ("Where the gap lives (frozen-base continuation, finding 9)", gap_split_finding(rows))):
        items.append(f"<li><b>{escape(title)}: {escape(finding['verdict'])}</b>. "
                     f"{escape(finding.get('key_numbers') or '')}<br><span class=\"note\">Rule: "
                     f"{escape(finding['rule'])}.</span></li>")
    return f"<ul>{''.join(items)}</ul>"


def _runs_html(runs: list[dict]) -> str:
    items = []
    for run in runs:
        seed = run.get("seed")
        summary = " · ".join(str(x) for x in (run.get("regime"),
                                                f"K={run.get('K')}" if run.get("K") is not None else None,
                                                f"seed {seed}" if seed is not None else None, run.get("model")) if x)
        config = run.get("config") or {}
        # the layout of the run's own config.yaml (`config.save_config`)
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True) if config else "(no config)"
        items.append(f"<details><summary>{escape(run.get('run', '?'))} "
                     f"<span class=\"note\">— {escape(summary)}</span></summary>"
                     f"<p class=\"note\">path: <code>{escape(run.get('path', ''))}</code></p>"
                     f"<pre>{escape(text)}</pre></details>")
    return "".join(items) or '<p class="note">No runs given.</p>'


def _protocol_html(protocol: dict[str, str]) -> str:
    items = [f"<dt>{escape(metric)}</dt><dd>{escape(text)}</dd>" for metric, text in protocol.items()]
    items.append("<dt>aggregation</dt><dd>Runs that share model, regime and K form a group; a group's number is "
                 "the mean over its runs (seeds) with the half-width of the 95% Student-t interval "
                 "(t<sub>0.975, n-1</sub> · s / √n); no interval for a group of one run. Final block = each run's "
                 "last block. Accuracies are fractions of 1 in the data and shown in %.</dd>")
    return f'<dl class="protocol">{"".join(items)}</dl>'


def _timings_html(timings: dict[str, float]) -> str:
    def fmt(s: float) -> str:
        return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"

    body = "".join(f'<tr><td class="label">{escape(k)}</td><td>{escape(fmt(float(v)))}</td></tr>'
                   for k, v in timings.items())
    return (f'<table><thead><tr><th class="label">step</th><th>wall time</th></tr></thead><tbody>{body}</tbody>'
            "</table>")


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
    order = [name for name in FIGURES if name != SATURATION] + ["reconstructions"]
    shown = [(name, figures[name]) for name in order if figures.get(name)]
    shown += [(name, paths) for name, paths in figures.items() if name not in order + [SATURATION] and paths]
    saturation = saturation_table(final, styler)
    interfaces = any(str(r.get("metric", "")).startswith(("stitch_", "continue")) for r in rows)

    sections = [("summary", "Summary")]
    if select(final, "recon_loss"):
        sections.append(("learning", "Did training learn?"))
    if shown:
        sections.append(("figures", "Figures"))
    if saturation or figures.get(SATURATION):
        sections.append((SATURATION, "Saturation, with and without bias"))
    if interfaces:
        sections.append(("interfaces", "Interfaces and the gap"))
    if select(final, "probe_acc", target=None):
        sections.append(("depth", "Probe accuracy by block"))
    sections += [("protocol", "Protocol"), ("runs", "Runs")]
    if timings:
        sections.append(("timings", "Timings"))

    when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>blockmae analysis report</title>", f"<style>{CSS}</style></head><body>",
        "<h1>blockmae analysis report</h1>",
        f'<p class="meta">Generated {escape(when)} · {len(run_names)} runs ({escape(", ".join(map(str, regimes)))}) · '
        f'models: {escape(", ".join(map(str, models)))} · datasets: {escape(", ".join(map(str, datasets)))} · '
        f"{len(rows)} metric rows{f' ({n_steps} checkpoint steps)' if n_steps else ''}.</p>",
        f'<p class="meta">Runs: {escape(", ".join(map(str, run_names)))}.</p>',
        f'<p class="meta">Metrics: {escape(", ".join(str(m) for m in metrics))}.</p>',
        "<nav>" + "".join(f'<a href="#{sid}">{escape(title)}</a>' for sid, title in sections) + "</nav>",
        '<h2 id="summary">Summary: final block</h2>', summary_table(final, styler),
    ]
    left_out = [r for r in rows if r.get("metric") == "clips_left_out" and r.get("step") is None]
    if left_out:
        seen = {}
        for r in left_out:  # the same clips for every source: once per dataset and split
            seen.setdefault((r.get("dataset"), r.get("split")), r)
        parts.append('<p class="warn">Unreadable clips were left out of every metric (each readable clip is used '
                     "exactly once): " + "; ".join(
                         f"{escape(d)} ({escape(sp)}): {int(r['value'])}: {escape(', '.join(r.get('files', [])[:5]))}"
                         for (d, sp), r in seen.items()) + ".</p>")
    if select(final, "recon_loss"):
        parts += ['<h2 id="learning">Did training learn? Losses beside the trivial predictors</h2>',
                  learning_table(final, styler), depth_rule_table(final, styler)]
    if shown:
        parts.append('<h2 id="figures">Figures</h2>')
        parts.append("<p>" + " · ".join(f'<a href="#fig-{escape(n)}">{escape(CAPTIONS.get(n, (n,))[0])}</a>'
                                        for n, _ in shown) + "</p>")
        parts += [_figure_html(name, paths) for name, paths in shown]
    if saturation or figures.get(SATURATION):
        parts += [f'<h2 id="{SATURATION}">Saturation, with and without bias</h2>', SATURATION_NOTE, saturation,
                  _figure_html(SATURATION, figures.get(SATURATION, []))]
    if interfaces:
        parts += ['<h2 id="interfaces">Interfaces, and where the blockwise gap lives</h2>', _interfaces_html(rows)]
    if select(final, "probe_acc", target=None):
        parts.append('<h2 id="depth">Linear-probe accuracy by block</h2>'
                     '<p class="note">Per dataset and target, accuracy (%) at the output of every block: mean ± 95% CI '
                     "half-width over seeds. Bold: best trained group at that block.</p>")
        parts.append(probe_rule_table(final, styler) + depth_tables(final, styler, "block"))
        if select(final, "probe_acc", "layer", target=None):
            parts.append("<details><summary>By layer</summary>" + depth_tables(final, styler, "layer") + "</details>")
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
