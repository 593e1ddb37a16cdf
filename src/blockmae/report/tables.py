"""The report's HTML tables, built from tidy rows: the final-block summary, the held-out losses beside the
trivial predictors, and probe accuracy at every block (or layer). A cell is the mean over a group's runs
± the half-width of its 95% t-interval."""

from __future__ import annotations

import html
import math
from collections import defaultdict

import numpy as np

from ..analysis.figures.style import Styler
from ..analysis.rows import (Group, chance_of, datasets_of, final_block_values, group_sort_key, last_pair_values,
                             mean_and_half_width, reference_loss, run_values, select, series, targets_of)
from ..eval.reconstruction import best_reference, margin_below
from .depth_rule import MIN_MARGIN, RATIO, excess_text, study_depth_rule
from .probe_rule import ABOVE_RANDOM_PP, PEAK_TOLERANCE, RISE_PP, peaks_text, study_probe_rule
from .learning import BASELINES, learning_verdicts

# metric -> (column heading, scale, decimals, higher is better)
SUMMARY_METRICS = {
    "probe_acc": ("probe acc. (%)", 100.0, 1, True),
    "retrieval_map": ("retrieval mAP", 1.0, 3, True),
    "recon_loss": ("recon. MSE", 1.0, 3, False),
}


def escape(text) -> str:
    return html.escape(str(text), quote=True)


def format_stat(mean: float, half: float, scale: float = 1.0, digits: int = 3) -> str:
    """'mean ± half' (the half-width of the 95% interval), or just the mean for a single run."""
    if mean is None or not math.isfinite(mean):
        return "–"
    text = f"{mean * scale:.{digits}f}"
    if half is not None and math.isfinite(half):
        text += f" ± {half * scale:.{digits}f}"
    return text


def _group_cell(styler: Styler, g: Group) -> str:
    return (f'<td class="label"><span class="swatch" style="background:{escape(styler.color(g))}"></span>'
            f"{escape(styler.label(g))}</td>")


def _row(g: Group, cells: list[str]) -> str:
    return ('<tr class="floor">' if g.regime == "random" else "<tr>") + "".join(cells) + "</tr>"


def _best(values: dict[Group, float], higher: bool) -> set[Group]:
    """The trained groups with the best mean (ties included); nothing when there is only one."""
    trained = {g: v for g, v in values.items() if g.regime != "random" and v is not None and math.isfinite(v)}
    if len(trained) < 2:
        return set()
    target = max(trained.values()) if higher else min(trained.values())
    return {g for g, v in trained.items() if math.isclose(v, target, rel_tol=0, abs_tol=1e-12)}


def summary_table(rows: list[dict], styler: Styler) -> str:
    metrics = [m for m in SUMMARY_METRICS if select(rows, m)]
    datasets = datasets_of([r for r in rows if r.get("metric") in metrics])
    if not metrics:
        return '<p class="note">No probe, retrieval or reconstruction rows.</p>'
    cells: dict[tuple[str, str], dict[Group, tuple[float, float]]] = {}
    for d in datasets:
        for m in metrics:
            cells[(d, m)] = {g: mean_and_half_width(v) for g, v in final_block_values(rows, m, d).items()}
    groups = sorted({g for c in cells.values() for g in c}, key=group_sort_key)
    seeds = defaultdict(set)
    for r in rows:
        seeds[(r.get("model"), r.get("regime"), r.get("K"))].add(r.get("run"))
    head1 = '<tr><th class="label" rowspan="2">group (model · regime · K)</th><th rowspan="2">runs</th>' + "".join(
        f'<th colspan="{len(metrics)}">{escape(d)}</th>' for d in datasets) + "</tr>"
    head2 = "<tr>" + "".join(f"<th>{escape(SUMMARY_METRICS[m][0])}</th>" for _ in datasets for m in metrics) + "</tr>"
    best = {(d, m): _best({g: s[0] for g, s in cells[(d, m)].items()}, SUMMARY_METRICS[m][3])
            for d in datasets for m in metrics}
    for (d, m), groups_best in best.items():  # no bold for a "best" that learning nothing matches
        floor = [s[0] for g, s in cells[(d, m)].items() if g.regime == "random"]
        if m == "recon_loss":  # the reference for a loss: the better of a lookup table and a copy
            floor = [loss for loss in [reference_loss(rows, d)] if loss is not None]
        higher = SUMMARY_METRICS[m][3]
        if floor and any((cells[(d, m)][g][0] <= np.mean(floor)) == higher for g in groups_best):
            groups_best.clear()
    body = []
    for g in groups:
        tds = [_group_cell(styler, g), f"<td>{len(seeds[(g.model, g.regime, g.K)])}</td>"]
        for d in datasets:
            for m in metrics:
                _, scale, digits, _ = SUMMARY_METRICS[m]
                if g in cells[(d, m)]:
                    mean, half = cells[(d, m)][g]
                    cls = ' class="best"' if g in best[(d, m)] else ""
                    tds.append(f"<td{cls}>{escape(format_stat(mean, half, scale, digits))}</td>")
                else:
                    tds.append("<td>–</td>")
        body.append(_row(g, tds))
    body.append(_chance_row(rows, datasets, metrics))
    return (f"<table><thead>{head1}{head2}</thead><tbody>{''.join(body)}</tbody></table>"
            '<p class="note">Final block of every run; probe accuracy is the mean over the dataset\'s targets, '
            "retrieval mAP likewise; chance is the majority class's share of the scored clips, averaged over "
            "targets. Cells: mean ± half-width of the 95% t-interval over the group's runs (seeds); a single number "
            "where the group has one run. Bold: best trained group in the column, only where it beats the "
            "random-init floor (for the MSE: the better of the position-mean and visible-mean predictors). Grey "
            "italic: the random-init floor, a group of randomly initialised encoders (one per seed).</p>")


def _chance_row(rows: list[dict], datasets: list[str], metrics: list[str]) -> str:
    """The summary's last row: chance under each probe column (nothing without chance rows)."""
    chances = {d: chance_of(rows, d) for d in datasets}
    if all(c is None for c in chances.values()) or "probe_acc" not in metrics:
        return ""
    cells = [f"<td>{100 * chances[d]:.1f}</td>" if m == "probe_acc" and chances[d] is not None else "<td>–</td>"
             for d in datasets for m in metrics]
    return '<tr class="floor"><td class="label">chance (majority class)</td><td>–</td>' + "".join(cells) + "</tr>"


def learning_table(rows: list[dict], styler: Styler) -> str:
    """Final-block held-out loss beside the four trivial predictors on the same clips and masks, and its margin
    below the better of the lookup table and the copy, per dataset."""
    parts = []
    for dataset in datasets_of(select(rows, "recon_loss", dataset=None)):
        losses = final_block_values(rows, "recon_loss", dataset)
        base = {k: run_values(rows, f"recon_loss_{k}", dataset) for k in BASELINES}
        head = ('<tr><th class="label">group</th><th>held-out MSE (final block)</th>'
                + "".join(f"<th>{escape(v)}</th>" for v in BASELINES.values())
                + "<th>below lookup / copy (%)</th></tr>")
        body = []
        for g in sorted(losses, key=group_sort_key):
            if g.regime == "random":
                continue
            mean, half = mean_and_half_width(losses[g])
            trivial = {k: mean_and_half_width(base[k].get(g, []))[0] for k in BASELINES}
            best = best_reference(trivial)
            margin = margin_below(mean, best[1]) if best else math.nan
            cls = ' class="bad"' if not margin > 0 else ""
            body.append(_row(g, [_group_cell(styler, g), f"<td>{escape(format_stat(mean, half, 1.0, 4))}</td>"]
                             + [f"<td>{escape(format_stat(trivial[k], math.nan, 1.0, 4))}</td>" for k in BASELINES]
                             + [f"<td{cls}>{escape(_margin_text(margin, best))}</td>"]))
        parts.append(f"<h3>{escape(dataset)}</h3><table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")
    verdicts = learning_verdicts(rows)
    if verdicts:
        parts.append('<ul class="warn">' + "".join(f"<li>{escape(v)}</li>" for v in verdicts) + "</ul>")
    return "".join(parts) + (
        '<p class="note">The trivial predictors are scored on the same held-out clips and tube masks as the models: '
        "<i>predict 0</i> (the mean of a normalised tubelet), <i>position mean</i> (each token position's mean target "
        "over the evaluated clips: a lookup table), <i>visible mean</i> (every hidden tubelet predicted as the mean "
        "of the clip's visible ones: a copy) and the <i>per-clip oracle</i> (every hidden tubelet predicted as the "
        "mean of the clip's hidden ones: the best constant per clip, which peeks at the answer; a model below it "
        "predicts structure within the clip). The last column is how far the model's loss lies below the lower of "
        "the lookup table and the copy, in % of that loss (named in brackets); at or below 0 (red) the model has "
        "learned nothing a lookup table or a copy could not.</p>")


def depth_rule_table(rows: list[dict], styler: Styler) -> str:
    """Does depth pay? Per dataset and trained group with two stages or more: its first and top stages' held-out
    margins below the best trivial predictor, and the loss rule against its own first stage (`report.depth_rule`)."""
    parts = []
    for dataset in datasets_of(select(rows, "recon_loss", dataset=None)):
        judged = study_depth_rule(rows, dataset)
        if not judged:
            continue
        head = ('<tr><th class="label">group</th><th>runs</th><th>first stage (% below)</th>'
                f"<th>top stage (% below)</th><th>top / first</th><th>top minus {RATIO}x first (points)</th>"
                f"<th>top minus {100 * MIN_MARGIN:.0f} % (points)</th><th>depth pays</th></tr>")
        body = []
        for g in sorted(judged, key=group_sort_key):
            d, rule = judged[g], judged[g]["rule"]
            first, top = (mean_and_half_width(d[k]) for k in ("first", "top"))
            ratio = f"{top[0] / first[0]:.2f}x" if first[0] > 0 else "–"
            cls = {"met": ' class="best"', "not met": ' class="bad"'}.get(rule["outcome"], "")
            body.append(_row(g, [_group_cell(styler, g), f"<td>{len(d['runs'])}</td>"]
                             + [f"<td>{escape(format_stat(m, h, 100.0, 1))}</td>" for m, h in (first, top)]
                             + [f"<td>{ratio}</td>"]
                             + [f"<td>{escape(excess_text(rule['parts'][k]))}</td>" for k in ("first_stage",
                                                                                           "min_margin")]
                             + [f"<td{cls}>{escape(rule['outcome'])}</td>"]))
        parts.append(f"<h3>{escape(dataset)}: does depth pay?</h3><table><thead>{head}</thead>"
                     f"<tbody>{''.join(body)}</tbody></table>")
    if not parts:
        return ""
    return "".join(parts) + (
        '<p class="note">A margin is how far a stage\'s held-out loss lies below the best trivial predictor\'s (the '
        "lowest of the four on the run's clips and masks), in % of it; E2E's stages are scored through its monitors "
        "(decoders on detached features), a blockwise stage through its own decoder (regimes whose upper stages "
        "predict pooled targets are left out: their losses are on other targets). Depth pays when the top "
        f"stage's margin reaches {100 * MIN_MARGIN:.0f} % and {RATIO}x its own first stage's: each bar is judged "
        "on the per-seed excess over it, paired by seed, with a 95 % t-interval: met when it clears zero, not met "
        "when it lies wholly below, inconclusive when it spans zero, not measured with one seed.</p>")


def probe_rule_table(rows: list[dict], styler: Styler) -> str:
    """Does it take the depth? Per dataset and trained group: the probe rule (`report.probe_rule`), its final block
    against the random encoders' and against its own block 1, per probe fitted, and where each target peaks."""
    parts = []
    for dataset in datasets_of(rows):
        judged = study_probe_rule(rows, dataset)
        if not judged:
            continue
        head = ('<tr><th class="label">group</th><th>probe</th><th>runs (random)</th><th>final block minus random '
                "init (pp)</th><th>final block minus block 1 (pp)</th><th>rule</th><th>each target peaks at block"
                "</th></tr>")
        body = []
        for g in sorted(judged, key=group_sort_key):
            for name, r in judged[g].items():
                cls = {"met": ' class="best"', "not met": ' class="bad"'}.get(r["outcome"], "")
                peaks = peaks_text(r)
                body.append(_row(g, [_group_cell(styler, g), f"<td>{escape(name)}</td>",
                                     f"<td>{r['seeds']} ({r['random_encoders']})</td>",
                                     *(f"<td>{escape(excess_text(r[k]))}</td>" for k in ("above_random", "rise")),
                                     f"<td{cls}>{escape(r['outcome'])}</td>", f"<td>{escape(peaks)}</td>"]))
        parts.append(f"<h3>{escape(dataset)}: does it take the depth?</h3><table><thead>{head}</thead>"
                     f"<tbody>{''.join(body)}</tbody></table>")
    if not parts:
        return ""
    return "".join(parts) + (
        f'<p class="note">The final block\'s mean probe over targets must beat the random-init encoders\' final blocks '
        f"by at least {ABOVE_RANDOM_PP:.0f} pp (Welch) and its own block 1 by at least {RISE_PP:.0f} pp (paired by "
        "seed), each 95 % interval clear of zero (met; not met: an interval wholly below its bar; inconclusive "
        f"otherwise; not measured: one run). A target peaks at the first block within {100 * PEAK_TOLERANCE:.0f} pp of its "
        "best.</p>")


def _margin_text(margin: float, best: tuple[str, float] | None) -> str:
    if best is None or not math.isfinite(margin):
        return "–"
    return f"{margin:+.1f} ({'copy' if best[0] == 'visible_mean' else 'lookup'})"


def depth_tables(rows: list[dict], styler: Styler, unit: str) -> str:
    """Per dataset, probe accuracy (%) at every `unit` ('block' or 'layer'), one row per target and group."""
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
            stats = {g: {k: mean_and_half_width(v) for k, v in data[g].items()} for g in groups}
            best = {k: _best({g: stats[g][k][0] for g in groups if k in stats[g]}, True) for k in range(1, n_units + 1)}
            for k, groups_best in best.items():  # no bold where the random-init encoders are as good on average
                floor = [stats[g][k][0] for g in groups if g.regime == "random" and k in stats[g]]
                if floor and any(stats[g][k][0] <= max(floor) for g in groups_best):
                    groups_best.clear()
            for i, g in enumerate(groups):
                tds = []
                if i == 0:
                    name = "mean over targets" if target == "mean" else target
                    chance = chance_of(rows, dataset, target)
                    note = f'<br><span class="note">chance {100 * chance:.1f}%</span>' if chance is not None else ""
                    tds.append(f'<td class="label" rowspan="{len(groups)}"><b>{escape(name)}</b>{note}</td>')
                tds.append(_group_cell(styler, g))
                for k in range(1, n_units + 1):
                    if k in stats[g]:
                        mean, half = stats[g][k]
                        cls = ' class="best"' if g in best[k] else ""
                        tds.append(f"<td{cls}>{escape(format_stat(mean, half, 100.0, 1))}</td>")
                    else:
                        tds.append("<td></td>")
                body.append(_row(g, tds))
        out.append(f'<h3>{escape(dataset)}</h3><table><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>')
    return "".join(out)


# metric -> column heading of the saturation table (pair metrics: the last two blocks; twonn_id: the last block)
SATURATION_COLUMNS = {
    "cka_linear": "linear CKA (K-1, K), plain",
    "cka_linear_debiased": "linear CKA (K-1, K), debiased",
    "mutual_knn": "mutual kNN (K-1, K)",
    "twonn_id": "TwoNN dimension, block K",
}


def saturation_table(rows: list[dict], styler: Styler) -> str:
    """Per dataset, the late-block similarity of every group: plain beside debiased CKA, mutual kNN, TwoNN."""
    out = []
    for dataset in datasets_of(select(rows, "cka_linear_debiased", pairs=True)):
        cells = {m: (final_block_values(rows, m, dataset) if m == "twonn_id" else last_pair_values(rows, m, dataset))
                 for m in SATURATION_COLUMNS}
        head = '<tr><th class="label">group</th>' + "".join(f"<th>{escape(h)}</th>" for h in
                                                           SATURATION_COLUMNS.values()) + "</tr>"
        body = []
        for g in sorted({g for c in cells.values() for g in c}, key=group_sort_key):
            tds = [_group_cell(styler, g)]
            for m in SATURATION_COLUMNS:
                text = format_stat(*mean_and_half_width(cells[m][g]), 1.0, 1 if m == "twonn_id" else 3) \
                    if g in cells[m] else "–"
                tds.append(f"<td>{escape(text)}</td>")
            body.append(_row(g, tds))
        out.append(f"<h3>{escape(dataset)}</h3><table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")
    return "".join(out)
