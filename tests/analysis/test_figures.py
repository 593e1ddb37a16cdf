"""Figures from synthetic tidy rows: every figure is drawn, and figures without their metrics are skipped."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from blockmae.analysis.figures import FIGURES, make_all_figures
from blockmae.analysis.figures.curves import cka_map_pairs, fig_stage_losses_cka
from blockmae.analysis.figures.final_block import fig_final_layer
from blockmae.analysis.figures.heatmaps import across_run_cka, within_run_cka
from blockmae.analysis.figures.reconstructions import fig_reconstructions
from blockmae.analysis.figures.style import Styler
from blockmae.analysis.rows import Group, final_rows, make_row
from helpers import TRIVIAL_LOSSES, interface_rows, synthetic_rows, synthetic_samples

def png_size(path: Path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def rows():
    return synthetic_rows() + interface_rows()


@pytest.mark.slow
def test_every_figure_is_drawn(rows, tmp_path):
    out = tmp_path
    result = make_all_figures(rows, out, samples=synthetic_samples(), strict=True)
    assert set(result) == set(FIGURES) | {"reconstructions"}
    for name, paths in result.items():
        assert paths, f"{name} drew nothing"
        for p in paths:
            assert p.exists() and p.parent == out
            w, h = png_size(p)
            assert 300 < w < 4000 and 300 < h < 4000, (p.name, w, h)
    names = {p.name for paths in result.values() for p in paths}
    for dataset in ("digits", "gratings", "gratings2"):
        assert f"depth_decodability_{dataset}_block.png" in names
        assert f"depth_decodability_{dataset}_layer.png" in names
        assert f"cka_within_{dataset}.png" in names
    assert "cka_across_digits.png" in names  # cross-run rows exist for the first dataset only
    assert "cka_across_gratings.png" not in names


def test_missing_metrics_write_nothing(tmp_path):
    rows = [r for r in synthetic_rows(datasets=("gratings",), steps=()) if r["metric"] == "effective_rank"]
    for fn in FIGURES.values():
        assert fn(rows, tmp_path) == []
    assert fig_reconstructions([], tmp_path / "r.png") == []
    assert fig_reconstructions(None, tmp_path / "r.png") == []
    assert list(tmp_path.iterdir()) == []


def test_saturation_figure_needs_its_metrics(tmp_path):
    from blockmae.analysis.figures.saturation import fig_saturation

    rows = synthetic_rows(datasets=("gratings",), steps=(), layers_per_block=1)
    old = [r for r in rows if r["metric"] not in ("cka_linear_debiased", "mutual_knn", "twonn_id")]
    assert fig_saturation(old, tmp_path) == []  # an analysis from before these metrics: nothing to compare
    (path,) = fig_saturation(rows, tmp_path)
    assert path.name == "saturation.png" and png_size(path)[0] > 1000
    only_dimension = [r for r in rows if r["metric"] == "twonn_id"]
    assert fig_saturation(only_dimension, tmp_path)


def test_last_pair_values(rows):
    from blockmae.analysis.rows import last_pair_values

    values = last_pair_values(final_rows(rows), "cka_linear_debiased", "gratings")
    e2e = [r["value"] for r in rows if r["metric"] == "cka_linear_debiased" and r["dataset"] == "gratings"
           and r["regime"] == "e2e" and r["block"] == 3 and r["block2"] == 4]
    assert sorted(values[Group("vit-tiny", "e2e", 4)]) == sorted(e2e) and len(e2e) == 2


def test_cka_map_pairs(rows):
    pairs = cka_map_pairs(final_rows(rows), "gratings")
    assert len(pairs) == 7 * 3  # 4 trained and 3 random runs x (K-1) consecutive pairs
    g, run, k, cka, gain = pairs[0]
    maps = {(r["run"], r["block"]): r["value"] for r in rows if r["metric"] == "retrieval_map"
            and r["dataset"] == "gratings" and r["target"] == "mean" and r["step"] is None}
    assert gain == pytest.approx(maps[(run, k + 1)] - maps[(run, k)])


def test_across_run_matrices_are_oriented(rows):
    across = across_run_cka(final_rows(rows), "digits")
    e2e, sim, rnd = (Group("vit-tiny", r, 4) for r in ("e2e", "simultaneous", "random"))
    assert across[(e2e, sim)][1] == 4 and across[(e2e, e2e)][1] == 1 and across[(sim, rnd)][1] == 2 * 3
    assert across[(e2e, sim)][0].shape == (4, 4)
    unit, within = within_run_cka(final_rows(rows), "digits")
    assert unit == "layer" and within[e2e][0].shape == (8, 8) and within[e2e][1] == 2


def test_several_models_and_K(tmp_path):
    rows = synthetic_rows(regimes=("e2e", "sequential"), seeds=(0, 1), Ks=(4, 6), models=("vit-tiny", "vit-small"),
                          datasets=("gratings",), layers_per_block=1, steps=())
    styler = Styler(rows)
    assert styler.label(Group("vit-small", "sequential", 6)) == "vit-small · Sequential K=6"
    assert styler.marker(Group("vit-small", "e2e", 4)) != styler.marker(Group("vit-small", "e2e", 6))
    assert styler.color(Group("vit-tiny", "e2e", 4)) == styler.color(Group("vit-small", "e2e", 6))
    for fn in (fig_final_layer, fig_stage_losses_cka):
        assert fn(rows, tmp_path)


def test_reconstructions_grayscale_and_ragged_stages(tmp_path):
    samples = synthetic_samples(C=1)
    samples[1]["stages"] = samples[1]["stages"][:2]  # a run with fewer stages leaves blank cells
    (path,) = fig_reconstructions(samples, tmp_path / "rec.png")
    assert png_size(path)[0] > 300


@pytest.mark.slow
def test_single_pretrained_checkpoint_without_seeds(tmp_path):
    """A Hugging Face checkpoint: one run, seed and K unknown, one NaN value; nothing to aggregate."""
    rows = synthetic_rows(regimes=("e2e",), seeds=(0,), datasets=("gratings",), steps=(), random_floor=())
    for r in rows:
        r.update(run="videomae-base", regime="pretrained", K=None, seed=None)
    rows[0]["value"] = float("nan")
    result = make_all_figures(rows, tmp_path, strict=True)
    assert result["final_layer"] and result["depth_decodability"] and result["cka_heatmaps"]
    assert result["learning_dynamics"] == [] and result["reconstructions"] == []
    assert Styler(rows).label(Group("vit-tiny", "pretrained", None)) == "Pretrained"


def test_across_run_cka_with_different_K():
    rows = []
    for run, regime, K in (("a", "e2e", 4), ("b", "simultaneous", 6)):
        rows.append({"run": run, "regime": regime, "model": "m", "K": K, "seed": 0, "dataset": "d", "split": None,
                     "block": 1, "layer": None, "metric": "probe_acc", "target": "mean", "value": 0.5, "step": None})
    for p in range(1, 7):  # run b (K=6) first: the matrix is turned to put E2E on the rows
        for q in range(1, 5):
            rows.append({**rows[1], "metric": "cka_linear", "block": p, "block2": q, "run2": "a", "value": p / 10 + q})
    ((pair, (m, n)),) = across_run_cka(rows, "d").items()
    assert pair == (Group("m", "e2e", 4), Group("m", "simultaneous", 6)) and n == 1
    assert m.shape == (4, 6) and m[2, 4] == pytest.approx(0.5 + 3)


@pytest.mark.slow
def test_figures_of_an_earlier_analysis_do_not_linger(tmp_path):
    (tmp_path / "depth_decodability_oldset_block.png").write_bytes(b"old")
    make_all_figures(synthetic_rows(seeds=(0,), datasets=("gratings",), steps=(), random_floor=(0,)), tmp_path)
    assert not (tmp_path / "depth_decodability_oldset_block.png").exists()
    assert list(tmp_path.glob("*.png"))


def test_colours_and_names_come_from_the_regime_table():
    from blockmae.regimes import REGIMES

    rows = synthetic_rows(regimes=("e2e", "sequential", "mystery"), seeds=(0,), datasets=("gratings",), steps=())
    styler = Styler(rows)
    assert styler.color(Group("vit-tiny", "sequential", 4)) == REGIMES["sequential"].color
    assert styler.label(Group("vit-tiny", "sequential", 4)) == f"{REGIMES['sequential'].label} K=4"
    unknown = styler.color(Group("vit-tiny", "mystery", 4))  # a regime the table lacks still gets its own colour
    assert unknown not in {r.color for r in REGIMES.values()}
    assert unknown != styler.color(Group("vit-tiny", "random", 4))


@pytest.fixture()
def captured(monkeypatch):
    """The Figure objects the figure functions save, by file name, for inspecting their axes."""
    from blockmae.analysis.figures import curves, final_block

    figures = {}

    def keep(fig, path):
        figures[Path(path).name] = fig
        return Path(path)

    for module in (curves, final_block):
        monkeypatch.setattr(module, "save", keep)
    return figures


def _lines(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines()}


def _references_rows():
    """Two regimes at K=4 and K=6, three random seeds, chance and the four trivial predictors on one dataset."""
    return synthetic_rows(regimes=("e2e", "simultaneous"), Ks=(4, 6), datasets=("gratings",), layers_per_block=1,
                          steps=(0, 100))


def test_depth_is_relative_so_K4_and_K6_end_together(tmp_path, captured):
    from blockmae.analysis.figures.curves import fig_depth_decodability

    rows = _references_rows()
    fig_depth_decodability(rows, tmp_path)
    mean_panel = captured["depth_decodability_gratings_block.png"].axes[0]
    lines = _lines(mean_panel)
    k4, k6 = np.asarray(lines["E2E K=4"].get_xdata()), np.asarray(lines["E2E K=6"].get_xdata())
    assert k4[-1] == k6[-1] == 1.0  # block 4 of 4 and block 6 of 6: the end of the encoder
    assert list(k4) == [0.25, 0.5, 0.75, 1.0] and 0.5 in k6 and len(k6) == 6  # block 2 of 4 meets block 3 of 6
    assert "fraction of the encoder" in mean_panel.get_xlabel()
    layer_panel = captured["depth_decodability_gratings_layer.png"].axes[0]
    assert list(_lines(layer_panel)["E2E K=6"].get_xdata()) == [1, 2, 3, 4, 5, 6]  # layers stay layer indices


def test_probe_panels_draw_chance_per_target_and_the_floor_of_three_seeds(tmp_path, captured):
    from blockmae.analysis.figures.curves import fig_depth_decodability

    rows = _references_rows()
    fig_depth_decodability(rows, tmp_path)
    panels = {ax.get_title(): ax for ax in captured["depth_decodability_gratings_block.png"].axes if ax.get_visible()}
    for title, target in (("mean over targets", "mean"), ("orientation", "orientation")):
        chance = [r["value"] for r in rows if r["metric"] == "chance_acc" and r["target"] == target][0]
        assert _lines(panels[title])["chance"].get_ydata()[0] == pytest.approx(100 * chance)
    floor = _lines(panels["mean over targets"])["Random init K=4"]
    seeds = [r["value"] for r in rows if r["regime"] == "random" and r["K"] == 4 and r["metric"] == "probe_acc"
             and r["block"] == 4 and r["target"] == "mean" and r["step"] is None]
    assert len(seeds) == 3 and floor.get_ydata()[-1] == pytest.approx(100 * np.mean(seeds))
    assert floor.get_linestyle() == "--"


def test_final_layer_draws_chance_floor_band_and_the_loss_baselines_readably(tmp_path, captured):
    rows = _references_rows()
    fig_final_layer(rows, tmp_path)
    probe, mAP, loss = captured["final_layer.png"].axes[:3]
    assert "chance" in _lines(probe) and "chance" not in _lines(mAP)  # chance is a probe's, not a ranking's
    (floor,) = [c for c in probe.collections if c.get_label() == "random init"]
    seeds = [r["value"] for r in rows if r["regime"] == "random" and r["metric"] == "probe_acc" and r["block"] == r["K"]
             and r["target"] == "mean" and r["step"] is None]
    assert len(seeds) == 6  # three seeds at each K, one floor for the model
    assert floor.get_segments()[0][0][1] == pytest.approx(100 * np.mean(seeds))
    lines = _lines(loss)
    assert lines["visible mean (copy)"].get_ydata()[0] == TRIVIAL_LOSSES["visible_mean"]
    assert lines["per-clip oracle constant"].get_ydata()[0] == TRIVIAL_LOSSES["oracle_constant"]
    low, high = loss.get_ylim()
    assert low < TRIVIAL_LOSSES["oracle_constant"] and TRIVIAL_LOSSES["visible_mean"] < high < 0.8
    # predict 0 and the position mean would squash the axis: named in the corner instead of drawn
    assert "predict 0" not in lines and "position mean (lookup table)" not in lines
    assert any("lookup 0.930" in t.get_text() and "predict 0 1.000" in t.get_text() for t in loss.texts)


def test_loss_panels_of_the_stage_and_dynamics_figures_have_the_baselines(tmp_path, captured):
    from blockmae.analysis.figures.curves import fig_learning_dynamics

    rows = _references_rows()
    fig_stage_losses_cka(rows, tmp_path)
    per_stage = captured["stage_losses_cka.png"].axes[0]
    assert {"visible mean (copy)", "per-clip oracle constant"} <= set(_lines(per_stage))
    assert _lines(per_stage)["Simultaneous K=6"].get_xdata()[-1] == 1.0  # the top stage at the encoder's end
    fig_learning_dynamics(rows, tmp_path)
    probe, _, loss = captured["learning_dynamics.png"].axes[:3]
    assert "chance" in _lines(probe) and "random init" in _lines(probe)
    # the loss falls from 1.0 over training: the whole range is shown, so predict 0 and the lookup table are drawn
    assert set(_lines(loss)) >= {"predict 0", "position mean (lookup table)", "visible mean (copy)",
                                 "per-clip oracle constant"}
