"""Stitching at block boundaries (`blockmae interfaces`): the identity stitch is exact, only the stitch trains, the rows
are tidy and cover both directions, the verdict gives each of its outcomes, and the command writes its outputs."""

import json

import pytest
import torch

import blockmae
from blockmae.analysis.rows import ROW_KEYS
from blockmae.cli import main
from blockmae.eval.reconstruction import held_out_losses
from blockmae.experiments.stitching import Stitched, stitch_rows, train_stitch
from blockmae.report.stitching_finding import (boundary_verdicts, interfaces_markdown, overall_verdict, stitching_finding,
                                               welch_interval)
from blockmae.train.engine import pretrain
from helpers import small_config, stitching_rows

COMMON = ["model.partition=[1,1,2]", "data.train=digits,n=8", "train.batch_size=4", "train.max_steps=2",
          "train.checkpoint_every=2", "train.progress=false", "train.device=cpu", "train.lr=1e-2"]
DATA = "digits,n=8"


@pytest.fixture(autouse=True)
def one_thread():
    """Models this small gain nothing from a second thread, and lose a lot when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs of K=3 stages: E2E (seed 0) and simultaneous (seed 1)."""
    root = tmp_path_factory.mktemp("stitching")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    for name, regime, seed in (("e2e", "e2e", 0), ("sim", "simultaneous", 1)):
        pretrain(small_config(f"train.regime={regime}", f"train.seed={seed}", *COMMON), root / name)
    torch.set_num_threads(threads)
    return root


def video_and_mask(model, batch=4, seed=0):
    video = torch.randn(batch, 3, 4, 32, 32, generator=torch.Generator().manual_seed(seed))
    return video, model.make_mask(batch, torch.Generator().manual_seed(seed), "tube", 0.9)


@torch.no_grad()
@pytest.mark.slow
def test_identity_stitch_of_a_run_with_itself_is_the_run(runs):
    model = blockmae.load(runs / "sim")
    video, mask = video_and_mask(model)
    own_loss, own_blocks = model.losses(video, mask)[-1], model.encode(video)
    for k in range(1, model.num_stages):
        stitched = Stitched(model, model, k)
        assert torch.equal(stitched.top_loss(video, mask), own_loss)
        blocks = stitched.encode(video, at="blocks")
        assert len(blocks) == len(own_blocks) and all(torch.equal(a, b) for a, b in zip(blocks, own_blocks))
        layers = stitched.encode(video, at="layers")
        assert all(torch.equal(a, b) for a, b in zip(layers, model.encode(video, at="layers")))
        # the held-out scorer reads a stitched model as it reads a run: its one decoder is B's top one
        scored = held_out_losses(stitched, lambda: [video], "tube", 0.9)
        assert scored == held_out_losses(model, lambda: [video], "tube", 0.9) | {"losses": scored["losses"]}
        assert scored["losses"] == [held_out_losses(model, lambda: [video], "tube", 0.9)["losses"][-1]]


@pytest.mark.slow
def test_only_the_stitch_trains_and_its_loss_goes_down(runs):
    a, b = blockmae.load(runs / "e2e"), blockmae.load(runs / "sim")
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in (("a", a), ("b", b))}
    flags = [p.requires_grad for p in list(a.parameters()) + list(b.parameters())]
    video, mask = video_and_mask(b, seed=1)
    with torch.no_grad():
        start = Stitched(a, b, 1).top_loss(video, mask).item()
    stitched, history = train_stitch(a, b, 1, lambda: [video], steps=30, seed=0, kind="tube", ratio=0.9)
    assert len(history) == 30
    for name, m in (("a", a), ("b", b)):
        assert all(torch.equal(v, before[name][k]) for k, v in m.state_dict().items()), name
    assert flags == [p.requires_grad for p in list(a.parameters()) + list(b.parameters())]
    assert not torch.equal(stitched.stitch.weight, torch.eye(a.cfg.width))
    assert all(p.grad is None for p in list(a.parameters()) + list(b.parameters()))
    with torch.no_grad():
        end = stitched.top_loss(video, mask).item()
    assert end < start  # the fixed batch under a fixed mask the training never drew
    assert sum(history[-5:]) < sum(history[:5])  # and the training loss itself, over steps


@pytest.mark.slow
def test_rows_cover_both_directions_and_every_boundary(runs):
    rows = stitch_rows([str(runs / "e2e"), str(runs / "sim")], DATA, steps=2, batch_size=4)
    assert all(set(ROW_KEYS) <= row.keys() and {"run2", "regime2"} <= row.keys() for row in rows)
    assert {r["metric"] for r in rows} == {"stitch_loss", "stitch_loss_own", "stitch_probe", "stitch_probe_own"}
    found = {(r["run"], r["regime"], r["run2"], r["regime2"], r["block"]) for r in rows}
    assert found == {("e2e", "e2e", "sim", "simultaneous", k) for k in (1, 2)} | \
        {("sim", "simultaneous", "e2e", "e2e", k) for k in (1, 2)}
    assert all(r["dataset"] == "digits" and r["split"] == "test" and r["layer"] is None and r["step"] is None
               and r["K"] == 3 and r["target"] == "mean" for r in rows)
    assert all(0 <= r["value"] <= 1 for r in rows if "probe" in r["metric"])
    own = {(r["run2"], r["metric"]): r["value"] for r in rows if r["metric"].endswith("_own")}
    assert len(own) == 4  # B's own numbers do not depend on A or the boundary
    with pytest.raises(ValueError, match="boundary 3 does not exist"):
        stitch_rows([str(runs / "e2e"), str(runs / "sim")], DATA, steps=1, boundaries=[3])


SIX = {"e0": "e2e", "e1": "e2e", "e2": "e2e", "s0": "simultaneous", "s1": "simultaneous", "s2": "simultaneous"}


def test_the_verdict_gives_each_outcome():
    same_seed = {("e2e", "e2e"): 1.0, ("simultaneous", "simultaneous"): 3.0}
    differ = stitching_rows(same_seed | {("e2e", "simultaneous"): 5.0, ("simultaneous", "e2e"): 2.0}, SIX)
    verdicts = boundary_verdicts(differ)  # baseline 2 pp; E2E -> Sim exceeds it by 3 pp
    assert [v.verdict for v in verdicts] == ["differ", "differ"] and overall_verdict(verdicts) == "differ"
    same = stitching_rows(same_seed | {("e2e", "simultaneous"): 3.0, ("simultaneous", "e2e"): -4.0}, SIX)
    verdicts = boundary_verdicts(same)
    assert [v.verdict for v in verdicts] == ["same", "same"] and overall_verdict(verdicts) == "same"
    # the same means with pairs that scatter: the interval straddles the margin, so no verdict
    noisy = stitching_rows(same_seed | {("e2e", "simultaneous"): 3.0, ("simultaneous", "e2e"): -4.0}, SIX, jitter=6.0)
    verdicts = boundary_verdicts(noisy)
    assert [v.verdict for v in verdicts] == ["inconclusive"] * 2 and "[" in verdicts[0].reason
    one_sim = stitching_rows(same_seed | {("e2e", "simultaneous"): 3.0, ("simultaneous", "e2e"): 3.0},
                        {"e0": "e2e", "e1": "e2e", "e2": "e2e", "s0": "simultaneous"})
    verdicts = boundary_verdicts(one_sim)
    assert [v.verdict for v in verdicts] == ["inconclusive"] * 2 and "fewer than two runs" in verdicts[0].reason
    assert overall_verdict(verdicts) == "inconclusive"
    text = interfaces_markdown(differ, spec=DATA, steps=100)
    assert "| 1 | E2E -> Simultaneous | 9 |" in text and "**Verdict: differ**" in text
    finding = stitching_finding(differ + [{"metric": "probe_acc", "value": 0.5}])
    assert finding["verdict"] == "differ" and finding["by_dataset"]["digits"]["1"]["verdict"] == "differ"
    assert stitching_finding([])["verdict"].startswith("not measured")


def test_welch_interval_matches_scipy():
    from scipy import stats

    a, b = [1.0, 2.5, 3.0, 4.2], [0.1, 0.4, 1.9]
    low, high = welch_interval(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert low == pytest.approx(ci.low) and high == pytest.approx(ci.high)
    assert welch_interval([1.0], b) == (float("-inf"), float("inf"))


@pytest.mark.slow
def test_the_command_writes_rows_figure_and_table(runs, tmp_path, capsys):
    out = tmp_path / "interfaces"
    main(["interfaces", str(runs / "e2e"), str(runs / "sim"), "--data", DATA, "--out", str(out), "--steps", "2",
          "--boundaries", "2", "--batch-size", "4"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {(r["run"], r["block"]) for r in rows} == {("e2e", 2), ("sim", 2)}
    assert (out / "stitching.png").stat().st_size > 0
    text = (out / "interfaces.md").read_text()
    assert "**Verdict: inconclusive**" in text and "fewer than two runs" in text
    assert "Verdict: inconclusive" in capsys.readouterr().out
    with pytest.raises(SystemExit) as error:
        main(["interfaces", str(runs / "e2e"), str(tmp_path / "nowhere"), "--data", DATA, "--out", str(out)])
    message = str(error.value)
    assert "nowhere" in message and "does not exist" in message and "\n" not in message


@pytest.mark.slow
def test_continuation_trains_each_k_from_the_blockwise_run_and_writes_its_section(runs, tmp_path, capsys):
    out = tmp_path / "interfaces"
    argv = ["interfaces", str(runs / "e2e"), str(runs / "sim"), "--data", DATA, "--out", str(out), "--steps", "0",
            "--continue-steps", "2", "--batch-size", "4"]
    main(argv)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {(r["run"], r["metric"]) for r in rows if r["metric"].startswith("continue_start")} == \
        {(run, m) for run in ("e2e", "sim") for m in ("continue_start_probe", "continue_start_loss")}
    continued = {(r["run"], r["block"]) for r in rows if r["metric"] == "continued_probe"}
    assert continued == {("sim", k) for k in range(3)}  # the blockwise run only, k = 0..K-1
    for k in range(3):  # each continuation is frozen-base from the run, with k stages fixed, for 2 steps
        config = (out / "continued" / f"sim-frozen{k}" / "config.yaml").read_text()
        assert "regime: frozen-base" in config and f"frozen_stages: {k}" in config and "max_steps: 2" in config
        assert str(runs / "sim") in config
        assert "mask_ratio: 0.0" in config  # the top decoder trains as E2E's, not with the run's decoder masking
    assert "mask_ratio: 0.5" in (runs / "sim" / "config.yaml").read_text()  # the simultaneous default
    sim = blockmae.load(runs / "sim")
    frozen2 = blockmae.load(out / "continued" / "sim-frozen2")
    for i in range(sim.stage_bounds(1)[1]):  # stages 1..2 as the run left them; stage 3 trained
        torch.testing.assert_close(frozen2.layers[i].state_dict(), sim.layers[i].state_dict())
    assert not torch.equal(frozen2.layers[-1].mlp.fc1.weight, sim.layers[-1].mlp.fc1.weight)
    text = (out / "interfaces.md").read_text()
    assert "Where the gap lives" in text and "| Simultaneous |" in text and "Stitching" not in text
    assert (out / "continuation.png").stat().st_size > 0 and "Verdict" in capsys.readouterr().out
    mtime = (out / "continued" / "sim-frozen0" / "summary.json").stat().st_mtime
    main(argv)  # again: the continued runs are reused, not retrained
    assert (out / "continued" / "sim-frozen0" / "summary.json").stat().st_mtime == mtime
