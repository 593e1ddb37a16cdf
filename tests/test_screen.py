"""`blockmae screen`: the depth-pays rule on known rows, and the command end to end on a small model."""

import json

import pytest

from blockmae.analysis.rows import make_row
from blockmae.cli import main
from blockmae.config import ConfigError, load_config, save_config
from blockmae.screen import screen_markdown, screen_result, screen_runs
from helpers import small_config

TRIVIAL = {"zero": 1.0, "position_mean": 0.8, "visible_mean": 0.9, "oracle_constant": 0.95}


def _inputs(deep: list[float], shallow: float, steps=(100, 200)) -> tuple[dict, list[dict]]:
    """Held-out curves (the final step's losses per deep stage and for the shallow encoder; earlier steps 0.05
    higher) with the trivial predictors, and probe rows rising by 5 pp per block."""
    def curve(losses):
        return [{"step": step, "losses": [v + (0.0 if step == steps[-1] else 0.05) for v in losses],
                 "baselines": TRIVIAL} for step in steps]

    meta = {"run": "K4-s0", "regime": "e2e", "model": "vit", "K": 4, "seed": 0}
    shallow_meta = {**meta, "run": "depth3-s0", "K": 1}
    random = {**meta, "run": "random-s0", "regime": "random"}
    rows = [make_row(meta, "d", "test", "probe_acc", 0.3 + 0.05 * b, block=b) for b in (1, 2, 3, 4)]
    rows += [make_row(meta, "d", "test", "probe_acc", 0.9, block=b, target="colour") for b in (1, 2, 3, 4)]
    rows += [make_row(random, "d", "test", "probe_acc", 0.3, block=b) for b in (1, 2, 3, 4)]
    rows.append(make_row(shallow_meta, "d", "test", "probe_acc", 0.33, block=1))
    return {"K4-s0": curve(deep), "depth3-s0": curve([shallow])}, rows


KINDS = {"K4-s0": "deep", "depth3-s0": "shallow"}


def test_depth_pays_when_the_top_stage_beats_the_best_trivial_predictor_by_more_than_the_shallow_views():
    # best trivial: position mean 0.8. Top 0.64 -> 20 %; first stage 0.76 -> 5 %; shallow 0.78 -> 2.5 %.
    result = screen_result(*_inputs([0.76, 0.72, 0.68, 0.64], 0.78), KINDS, K=4, batch=32)
    assert result["best_trivial"] == "position_mean"
    rule = result["loss_rule"]  # one seed: no interval, so not measured; the means pass both views
    assert rule["outcome"] == "not measured" and rule["by_means"] == {"first_stage": True, "shallow": True}
    assert result["final_margin"]["deep"]["4"][0] == pytest.approx(0.2)
    assert result["ratios"] == {"first_stage": pytest.approx(0.2 / 0.05), "shallow": pytest.approx(0.2 / 0.025)}
    assert result["curves"]["deep"]["4"][0] == [(3200, pytest.approx(0.11 / 0.8)), (6400, pytest.approx(0.2))]
    assert result["top_last_change"] == pytest.approx(0.05 / 0.8)
    assert result["probes"]["deep"][3][0] == pytest.approx(0.5) and result["probes"]["random"][3][0] == 0.3


@pytest.mark.parametrize("deep, shallow, beats, ratios_pass, why", [
    ([0.76, 0.74, 0.73, 0.74], 0.78, {"first_stage": False, "shallow": False}, (True, True), "top margin 7.5 % < 10 %"),
    ([0.66, 0.64, 0.63, 0.62], 0.78, {"first_stage": False, "shallow": True}, (False, True),
     "top 22.5 % < 1.5 x first stage's 17.5 %"),
    ([0.76, 0.72, 0.68, 0.64], 0.66, {"first_stage": True, "shallow": False}, (True, False),
     "top 20 % < 1.5 x the shallow's 17.5 %"),
])
def test_depth_does_not_pay_when_either_condition_fails(deep, shallow, beats, ratios_pass, why):
    result = screen_result(*_inputs(deep, shallow), KINDS, K=4, batch=32)
    assert result["loss_rule"]["outcome"] == "not measured" and result["loss_rule"]["by_means"] == beats, why
    page = screen_markdown({**result, "config": "tiny", "overrides": [], "data": "d", "seeds": [0]})
    assert "**Depth pays: not measured.** One seed gives no interval; by the means, depth does not pay" in page
    lines = page.splitlines()
    minimum = next(line for line in lines if line.startswith("- the top stage's margin"))
    assert minimum.endswith(f"(by the means: {'passes' if deep[3] <= 0.72 else 'fails'})"), minimum
    for passes, name in zip(ratios_pass, ("its own first stage", "the shallow encoder")):
        line = next(line for line in lines if line.startswith(f"- against {name}"))
        assert line.endswith(f"not measured (by the means: {'passes' if passes else 'fails'})"), line


def _seeds(deep_finals: list[list[float]], shallow_finals: list[float]) -> tuple[dict, dict]:
    """Curves of one final point per seed (deep: per-stage losses), with their kinds."""
    curves, kinds = {}, {}
    for seed, (deep, shallow) in enumerate(zip(deep_finals, shallow_finals)):
        curves[f"depth4-s{seed}"] = [{"step": 100, "losses": deep, "baselines": TRIVIAL}]
        curves[f"depth1-s{seed}"] = [{"step": 100, "losses": [shallow], "baselines": TRIVIAL}]
        kinds.update({f"depth4-s{seed}": "deep", f"depth1-s{seed}": "shallow"})
    return curves, kinds


def test_with_several_seeds_each_bar_needs_the_per_seed_excess_clear_of_zero():
    # position mean 0.8. Tops 0.60, 0.62, 0.64 (25, 22.5, 20 %); first stages 0.72, 0.704, 0.688 (10, 12, 14 %);
    # shallow 0.78 (2.5 %). Top minus 1.5x first stage: +10, +4.5, -1 points, an interval reaching below zero.
    tops = (0.60, 0.62, 0.64)
    curves, kinds = _seeds([[f, 0.7, 0.65, t] for f, t in zip((0.72, 0.704, 0.688), tops)], [0.78] * 3)
    result = screen_result(curves, [], kinds, K=4, batch=32)
    assert result["ratios"]["first_stage"] == pytest.approx(0.225 / 0.12)  # the means alone would pass (1.87x)
    assert result["seed_ratios"]["first_stage"] == [pytest.approx(2.5), pytest.approx(0.225 / 0.12),
                                                    pytest.approx(0.2 / 0.14)]
    rule = result["loss_rule"]
    excess = rule["parts"]["first_stage"]
    assert excess["mean"] == pytest.approx(4.5) and excess["low"] < 0 < excess["high"]
    assert excess["outcome"] == "inconclusive" and rule["by_means"]["first_stage"]
    assert rule["parts"]["min_margin"]["outcome"] == rule["parts"]["shallow"]["outcome"] == "met"
    assert rule["views"] == {"first_stage": "inconclusive", "shallow": "met"} and rule["outcome"] == "inconclusive"
    page = screen_markdown({**result, "config": "tiny", "overrides": [], "data": "d", "seeds": [0, 1, 2]})
    assert "**Depth pays: inconclusive.**" in page
    assert "(per seed 2.50x, 1.87x, 1.43x); top minus 1.5x it: +4.5 [" in page and "points, inconclusive" in page
    # the same tops over first stages at 8 % (+13, +10.5, +8 points): the interval clears zero and depth pays
    curves, kinds = _seeds([[0.736, 0.7, 0.65, t] for t in tops], [0.78] * 3)
    assert screen_result(curves, [], kinds, K=4, batch=32)["loss_rule"]["outcome"] == "met"
    # tops 6, 6.25, 6.5 % below the position mean: the excess over 10 % lies wholly below zero, so not met
    curves, kinds = _seeds([[0.79, 0.78, 0.77, t] for t in (0.752, 0.75, 0.748)], [0.79] * 3)
    rule = screen_result(curves, [], kinds, K=4, batch=32)["loss_rule"]
    assert rule["parts"]["min_margin"]["high"] < 0 and rule["outcome"] == "not met"
    assert rule["views"] == {"first_stage": "not met", "shallow": "not met"}


def test_the_shallow_run_is_the_first_stage_alone_and_both_are_end_to_end(tmp_path):
    save_config(small_config("model.partition=[1,3]", "train.max_steps=10"), tmp_path / "base.yaml")
    studies = screen_runs(str(tmp_path / "base.yaml"), ["train.lr=1e-3"], [0, 1], snapshots=5)
    (deep_name, deep), (shallow_name, shallow) = studies["deep"].runs()[0], studies["shallow"].runs()[1]
    assert deep_name == "depth4-s0" and shallow_name == "depth1-s1"
    deep_cfg, shallow_cfg = load_config(str(tmp_path / "base.yaml"), deep), load_config(str(tmp_path / "base.yaml"),
                                                                                         shallow)
    assert deep_cfg.train.regime == shallow_cfg.train.regime == "e2e" and deep_cfg.train.snapshot_every == 2
    assert deep_cfg.model.partition == [1, 3] and shallow_cfg.model.partition == [1] and shallow_cfg.train.lr == 1e-3
    save_config(small_config(), tmp_path / "epochs.yaml")  # no max_steps: nothing to take snapshots of
    with pytest.raises(ConfigError, match="train.max_steps"):
        screen_runs(str(tmp_path / "epochs.yaml"), ["train.max_steps=null", "train.epochs=1"], [0], 5)


@pytest.mark.slow
def test_screen_from_the_cli_writes_its_verdict_curves_and_probes(tmp_path, capsys):
    cfg = small_config("model.partition=2", "train.batch_size=4", "train.log_every=1", "train.max_steps=4",
                       "data.train=hierarchy,n=32", "mask.ratio=0.75")
    save_config(cfg, tmp_path / "base.yaml")
    out = tmp_path / "screen"
    args = ["screen", str(tmp_path / "base.yaml"), "train.lr=1e-3", "--data", "hierarchy,n=24", "--snapshots", "2",
            "--out", str(out), "--attentive", "--random-floor", "2"]
    main(args)  # (re-running resumes: train_all, tested with the study)
    printed = capsys.readouterr().out
    assert "**Depth pays: not measured.** One seed gives no interval" in printed
    result = json.loads((out / "screen.json").read_text())
    assert set(result["curves"]["deep"]) == {"1", "2"} and len(result["curves"]["deep"]["2"][0]) == 2
    assert [x for x, _ in result["curves"]["shallow"]["1"][0]] == [8, 16]  # clips seen at steps 2 and 4
    # the last point of the curve is the final model's held-out loss, as its training summary scored it
    summary = json.loads((out / "runs" / "depth4-s0" / "summary.json").read_text())["held_out"]
    best = min(summary["baselines"].values())
    assert result["final_margin"]["deep"]["2"][0] == pytest.approx((best - summary["losses"][1]) / best)
    assert len(result["probes"]["deep"]) == 2 and len(result["probes"]["shallow"]) == 1 and result["probes"]["random"]
    assert (out / "screen.png").stat().st_size > 0 and "| deep, stage 2 |" in (out / "screen.md").read_text()
    # the probe rule under both probes, from the final blocks of one seed (no interval) and 2 random ones
    rule = result["probe_rule"]
    assert set(rule) == {"linear", "attentive"} and rule["attentive"]["outcome"] == "not measured"
    assert rule["attentive"]["random_encoders"] == 2 and set(rule["attentive"]["targets"]) == {"root", "level2",
                                                                                               "level1", "leaf"}
    assert "| attentive | 1 (random: 2) |" in (out / "screen.md").read_text()
    # both encoders trained end to end, the shallow one with the deep one's first stage's layers
    assert json.loads((out / "runs" / "depth2-s0" / "summary.json").read_text())["partition"] == [2]
