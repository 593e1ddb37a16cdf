"""The HTML report: self-contained, every figure embedded, the table numbers present, well-formed."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import yaml

from blockmae.analysis.figures import FIGURES
from blockmae.analysis.rows import Group, final_block_values, final_rows, mean_and_half_width, targets_of
from blockmae.report.page import write_report
from blockmae.report.tables import format_stat
from helpers import TRIVIAL_LOSSES, interface_rows, synthetic_rows

PROTOCOL = {
    "probe_acc": "linear probe: standardise, multinomial logistic regression (L-BFGS, 1000 it.), 3-fold CV <seed 0>",
    "retrieval_map": "leave-one-out cosine retrieval & mAP",
    "recon_loss": "per-stage masked MSE",
}
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}
RUNS = [{"run": "vit-tiny-e2e-K4-s0", "path": "/runs/e2e s0", "regime": "e2e", "K": 4, "seed": 0, "model": "vit-tiny",
         "config": {"model": {"size": "tiny", "partition": [2, 2, 2, 2], "decoder": {"depth": 1}},
                    "train": {"regime": "e2e", "lr": 1.5e-4, "note": "a: b", "flag": True, "none": None},
                    "data": {"train": "digits,n=96"}}},
        {"run": "<script>alert(1)</script>", "path": "/runs/e2e s0", "regime": "random", "K": 4, "seed": 0,
         "model": "vit-tiny", "config": {}}]


class Checker(HTMLParser):
    """Fails on unbalanced or misnested tags; collects images, links and text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.images, self.refs, self.text = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if key in attrs:
                self.refs.append(attrs[key])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def stand_in_figures(out) -> dict:
    """Two small PNGs under every figure name the analysis draws: the page embeds what it is given (drawing the real
    figures is test_figures.py's; test_attentive_analyze.py's report embeds real ones)."""
    from matplotlib.image import imsave

    figures = {}
    for name in [*FIGURES, "reconstructions"]:
        figures[name] = [out / f"{name}_{i}.png" for i in (1, 2)]
        for i, path in enumerate(figures[name]):
            imsave(path, np.full((4, 6), i, dtype=float))
    return figures


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rows, figures = synthetic_rows() + interface_rows(), stand_in_figures(out)
    timings = {"extraction": 12.5, "probe": 3.25, "total": 300.0}
    path = write_report(out, rows, figures, RUNS, PROTOCOL, timings=timings)
    return path, rows, figures


def test_report_is_self_contained_and_parses(report):
    path, rows, figures = report
    assert path.name == "report.html" and path.exists()
    text = path.read_text(encoding="utf-8")
    checker = Checker()
    checker.feed(text)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    n_png = sum(len(p) for p in figures.values())
    assert n_png >= 10
    assert text.count('<img src="data:image/png;base64,') == n_png == len(checker.images)
    assert not re.search(r"https?://", text)
    assert all(ref.startswith(("#", "data:image/png;base64,")) for ref in checker.refs)
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_report_tables_hold_the_numbers(report):
    path, rows, _ = report
    text = path.read_text(encoding="utf-8")
    final = final_rows(rows)
    for dataset in ("digits", "gratings"):
        for regime in ("e2e", "simultaneous"):
            g = Group("vit-tiny", regime, 4)
            values = final_block_values(final, "probe_acc", dataset)[g]
            assert len(values) == 2
            mean, half = mean_and_half_width(values)
            assert f"{100 * mean:.1f} ± {100 * half:.1f}" in text
            mean, half = mean_and_half_width(final_block_values(final, "retrieval_map", dataset)[g])
            assert f"{mean:.3f} ± {half:.3f}" in text
            mean, half = mean_and_half_width(final_block_values(final, "recon_loss", dataset)[g])
            assert format_stat(mean, half) in text
        # per-target table: block 1 accuracy of one target
        block1 = [r["value"] for r in rows if r["dataset"] == dataset and r["metric"] == "probe_acc" and r["block"] == 1
                  and r["target"] == targets_of([r for r in rows if r["dataset"] == dataset])[-1]
                  and r["regime"] == "sequential"]
        assert block1 == []  # no such regime
    target_rows = [r["value"] for r in rows if r["dataset"] == "gratings" and r["metric"] == "probe_acc"
                   and r["block"] == 2 and r["target"] == "orientation" and r["regime"] == "simultaneous"
                   and r["step"] is None]
    mean, half = mean_and_half_width(target_rows)
    assert f"{100 * mean:.1f} ± {100 * half:.1f}" in text
    assert "<b>orientation</b>" in text


def test_report_sections(report):
    path, _, _ = report
    text = path.read_text(encoding="utf-8")
    for anchor in ("summary", "figures", "interfaces", "depth", "protocol", "runs", "timings"):
        assert f'id="{anchor}"' in text
    # findings 8 and 9 on the synthetic interface rows: their verdicts and rules, and their figures
    assert "Interfaces (stitching, finding 8)" in text and "Where the gap lives" in text and "Rule: gap =" in text
    assert "3-fold CV &lt;seed 0&gt;" in text  # protocol text, escaped
    assert text.count("<details>") >= 3  # two runs + the by-layer tables
    assert "12.5 s" in text and "5.0 min" in text
    for heading in ("Final-block quality", "Decodability vs depth", "CKA heatmaps", "Reconstructions",
                    "Interfaces: stitching at block boundaries", "Where the gap lives: frozen-base continuation"):
        assert heading in text


def test_saturation_section_holds_plain_and_debiased_cka(report):
    from blockmae.analysis.rows import last_pair_values

    path, rows, _ = report
    text = path.read_text(encoding="utf-8")
    assert 'id="saturation"' in text and 'href="#saturation"' in text
    assert text.count('id="fig-saturation"') == 1  # its figure sits in its own section, not twice
    final = final_rows(rows)
    g = Group("vit-tiny", "simultaneous", 4)
    for metric in ("cka_linear", "cka_linear_debiased", "mutual_knn"):
        assert format_stat(*mean_and_half_width(last_pair_values(final, metric, "gratings")[g])) in text
    twonn = final_block_values(final, "twonn_id", "gratings")[g]
    assert format_stat(*mean_and_half_width(twonn), 1.0, 1) in text


def test_report_without_figures_or_timings(tmp_path):
    rows = [r for r in synthetic_rows(datasets=("gratings",), steps=(), seeds=(0,), random_floor=(0,))
            if r["metric"] == "probe_acc"]  # one run per group: no interval anywhere
    path = write_report(tmp_path, rows, {"final_layer": [], "tokens": []}, [], PROTOCOL)
    text = path.read_text(encoding="utf-8")
    assert "data:image" not in text and 'id="timings"' not in text
    single = final_block_values(final_rows(rows), "probe_acc", "gratings")[Group("vit-tiny", "e2e", 4)]
    assert f"{100 * single[0]:.1f}" in text and "± " not in text.split('id="summary"')[1].split("</table>")[0]


def test_each_runs_config_is_shown_as_yaml(report):
    path, _, _ = report
    shown = [html.unescape(text) for text in re.findall(r"<pre>(.*?)</pre>", path.read_text(encoding="utf-8"), re.S)]
    assert len(shown) == len(RUNS)
    assert yaml.safe_load(shown[0]) == RUNS[0]["config"]  # every value, type and nesting survives
    assert "lr: 0.00015" in shown[0] and "note: 'a: b'" in shown[0]  # readable: plain numbers, quoted where needed
    assert list(yaml.safe_load(shown[0])) == ["model", "train", "data"]  # in the config's own order
    assert shown[1] == "(no config)"


def _rows_where_the_floor_wins():
    rows = []
    for regime, seeds, probe in (("e2e", (0, 1), 0.50), ("simultaneous", (0, 1), 0.55), ("random", (0, 1, 2), 0.60)):
        for seed in seeds:
            meta = {"run": f"{regime}-s{seed}", "regime": regime, "model": "vit-tiny", "K": 4, "seed": seed,
                    "dataset": "scenes", "split": "test", "layer": None, "step": None, "target": "mean"}
            rows.append({**meta, "block": 4, "metric": "probe_acc", "value": probe + 0.001 * seed})
            if regime != "random":
                rows.append({**meta, "block": 4, "metric": "recon_loss", "value": 0.95})
                rows.append({**meta, "block": None, "metric": "recon_loss_position_mean", "value": 0.94})
    return rows


def test_report_says_plainly_when_nothing_beats_the_baselines(tmp_path):
    rows = _rows_where_the_floor_wins()
    html = write_report(tmp_path, rows, {}, [], {}).read_text()
    assert 'class="best"' not in html  # the best trained run is not bold when the random encoder beats it
    assert "no trained run reconstructs better than predicting each position" in html
    assert "no trained run&#x27;s final-block probe beats the random-init encoder" in html
    assert 'class="bad"' in html  # the loss / position-mean ratio above 1 is marked


def test_a_trained_run_beats_the_floor_only_beyond_the_interval_of_the_difference(tmp_path):
    from blockmae.report.learning import learning_verdicts

    rows = _rows_where_the_floor_wins()
    for r in rows:  # the trained runs now sit above the floor's mean, but within the floor seeds' spread
        if r["regime"] == "random":
            r["value"] = (0.30, 0.45, 0.60)[r["seed"]]
        elif r["metric"] == "probe_acc":
            r["value"] = 0.50 + 0.001 * r["seed"]
    assert any("beats the random-init encoder (45.0% ± " in v and "3 seeds" in v for v in learning_verdicts(rows))
    for r in rows:  # a floor that does not vary: the same trained runs now clear it
        if r["regime"] == "random":
            r["value"] = 0.45
    assert not any("random-init" in v for v in learning_verdicts(rows))


def test_learning_table_shows_the_four_trivial_predictors_and_the_margin_below_the_copy(tmp_path):
    rows = synthetic_rows(datasets=("gratings",), steps=())
    text = write_report(tmp_path, rows, {}, [], {}).read_text()
    learning = text.split('id="learning"')[1].split("</table>")[0]
    for heading in ("predict 0", "position mean (lookup)", "visible mean (copy)", "per-clip oracle",
                    "below lookup / copy (%)"):
        assert heading in learning
    assert f"{TRIVIAL_LOSSES['oracle_constant']:.4f}" in learning
    mean = mean_and_half_width(final_block_values(final_rows(rows), "recon_loss", "gratings")[
        Group("vit-tiny", "e2e", 4)])[0]
    copy = TRIVIAL_LOSSES["visible_mean"]
    assert f"{100 * (copy - mean) / copy:+.1f} (copy)" in learning  # the copy is the lower of lookup and copy
    assert 'class="bad"' not in learning
    summary = text.split('id="summary"')[1].split("</table>")[0]
    assert "chance (majority class)" in summary and "24.0" in summary  # gratings: mean over its five targets
    assert "chance 20.0%" in text  # the first target's chance beside its per-block probes


def test_a_run_between_the_copy_and_the_lookup_table_is_named(tmp_path):
    from blockmae.report.learning import learning_verdicts

    rows = [r for r in synthetic_rows(datasets=("gratings",), steps=(), regimes=("e2e",)) if r["regime"] != "random"]
    for r in rows:
        if r["metric"] == "recon_loss_visible_mean":
            r["value"] = 0.5  # a copy better than the model's 0.6
    verdicts = learning_verdicts(rows)
    assert verdicts == ["gratings: e2e K=4 reconstruct no better than copying the clip's visible mean into every "
                        "hidden tubelet."]
    html = write_report(tmp_path, rows, {}, [], {}).read_text()
    assert 'class="bad"' in html.split('id="learning"')[1].split("</table>")[0]
