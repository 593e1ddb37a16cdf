"""`blockmae analyze` end to end on tiny runs of two regimes, a random floor and a Hugging Face directory."""

import json

import numpy as np
import pytest

from blockmae.cli import main
from helpers import one_thread

pytestmark = pytest.mark.slow  # real processes / trained runs: `make test` runs it, `make test-fast` does not

# 4-frame clips: 128 tokens per clip where the preset has 256 (every source and checkpoint encodes every clip, and
# the occlusion diagnostic encodes them twice more)
TINY = ["train.max_steps=4", "train.batch_size=4", "data.train=digits,n=16", "train.progress=false",
        "train.checkpoint_every=2", "train.snapshot_every=2", "model.depth=4", "model.partition=2", "model.frames=4"]
# probes fitted in this process; figures are test_figures.py's, and test_attentive_analyze.py's and test_study.py's
# analyses draw theirs
DATA = ["--data", "digits,n=24", "--data", "gratings2,n=30", "--threads", "1", "--no-figures"]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    with one_thread():
        for regime in ("e2e", "simultaneous"):
            main(["pretrain", "tiny", f"train.regime={regime}", *TINY, "--out", str(root / regime)])
        out = root / "analysis"
        main(["analyze", str(root / "e2e"), str(root / "simultaneous"), *DATA, "--random-floor", "2", "--dynamics",
              "--save-features", "--out", str(out), "--batch-size", "8"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return root, out, rows


def test_rows_are_tidy_and_cover_every_metric_family(analysed):
    _, _, rows = analysed
    keys = {"run", "regime", "model", "K", "seed", "dataset", "split", "block", "layer", "metric", "target", "value"}
    assert all(keys <= row.keys() for row in rows)
    metrics = {row["metric"] for row in rows}
    for m in ("probe_acc", "knn_acc", "retrieval_map", "retrieval_r@1", "gallery_r@1", "recon_loss", "cka_linear",
              "cka_rbf", "token_similarity", "occlusion_drop", "update_norm", "effective_rank", "participation_ratio",
              "uniformity", "cka_linear_debiased", "cka_rbf_debiased", "mutual_knn", "twonn_id"):
        assert m in metrics, m
    where = {(r["metric"], r["block"], r.get("block2"), r["layer"], r.get("layer2")) for r in rows
             if r["run"] == "e2e" and r["dataset"] == "digits" and r["step"] is None and "run2" not in r}
    for metric in ("cka_linear", "cka_linear_debiased", "cka_rbf_debiased", "mutual_knn"):
        assert (metric, 1, 2, None, None) in where, metric  # consecutive blocks (2 blocks of 2 layers)
    assert ("cka_linear_debiased", None, None, 1, 4) in where and ("mutual_knn", None, None, 3, 4) in where
    assert ("twonn_id", 2, None, None, None) in where and ("twonn_id", None, None, 4, None) in where
    assert any(r["metric"] == "cka_linear_debiased" and r.get("run2") for r in rows)  # across runs too
    assert {row["regime"] for row in rows} == {"e2e", "simultaneous", "random"}
    acc = [r["value"] for r in rows if r["metric"] == "probe_acc"]
    assert all(0.0 <= v <= 1.0 for v in acc)
    digits_probe = {(r["run"], r["block"], r["target"]) for r in rows
                    if r["metric"] == "probe_acc" and r["dataset"] == "digits" and r["block"]}
    assert ("e2e", 2, "direction") in digits_probe and ("e2e", 1, "mean") in digits_probe
    assert any(r.get("run2") for r in rows)  # across-run CKA
    assert any(r["step"] == 2 for r in rows)  # learning dynamics from the snapshots


def test_several_random_encoders_chance_and_the_oracle(analysed):
    _, _, rows = analysed
    floor = {(r["run"], r["seed"]) for r in rows if r["regime"] == "random"}
    assert {seed for _, seed in floor} == {0, 1} and len({run for run, _ in floor}) == 2  # --random-floor 2
    assert all(run.endswith(f"-K2-s{seed}") for run, seed in floor)
    probes = {r["run"]: r["value"] for r in rows if r["regime"] == "random" and r["metric"] == "probe_acc"
              and r["dataset"] == "gratings2" and r["block"] == 2 and r["target"] == "mean"}
    assert len(set(probes.values())) > 1  # different encoders, not one copied twice
    chance = {(r["run"], r["target"]): r["value"] for r in rows if r["metric"] == "chance_acc"
              and r["dataset"] == "digits"}
    assert {run for run, _ in chance} == {r["run"] for r in rows if r.get("run2") is None}  # one set per source
    assert ("e2e", "direction") in chance and 0 < chance[("e2e", "mean")] < 1
    baselines = {r["metric"]: r["value"] for r in rows if r["run"] == "e2e" and r["dataset"] == "digits"
                 and r["metric"].startswith("recon_loss_") and r["step"] is None}
    assert baselines["recon_loss_oracle_constant"] < baselines["recon_loss_visible_mean"]


def test_outputs_report_and_features_and_no_figures_when_asked(analysed):
    _, out, _ = analysed
    html = (out / "report.html").read_text()
    assert not list(out.glob("figures/*.png")) and "data:image/png;base64," not in html  # --no-figures
    assert 'id="summary"' in html and 'id="depth"' in html and 'id="figures"' not in html  # tables, no figures
    z = np.load(out / "features" / "e2e_digits_test.npz")
    assert {"block_1", "block_2", "layer_1", "layer_4", "y", "target_names"} <= set(z.files)
    assert z["block_2"].shape == (24, 96) and np.array_equal(z["block_2"], z["layer_4"])


def test_features_are_cached_and_reused(analysed, tmp_path, single_thread):  # one thread, as `analysed` ran
    root, out, rows = analysed
    cached = sorted((out / "cache").glob("*.npz"))
    main(["analyze", str(root / "e2e"), "--data", "digits,n=24", "--out", str(out), "--batch-size", "8", "--no-figures"])
    assert sorted((out / "cache").glob("*.npz")) == cached  # nothing re-extracted
    again = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = {(r["metric"], r["block"], r["target"]): r["value"] for r in rows
             if r["run"] == "e2e" and r["dataset"] == "digits" and r["step"] is None and r["layer"] is None and "run2" not in r}
    second = {(r["metric"], r["block"], r["target"]): r["value"] for r in again if r["layer"] is None and "run2" not in r}
    # recon losses: GEMM rounding may follow buffer placement; an occlusion drop is nan where the probe scored 0
    assert second == pytest.approx(first, rel=1e-6, nan_ok=True)


def test_analyze_a_hugging_face_directory_as_blocks(tmp_path, capsys):
    """A Hugging Face checkpoint is one stage; --blocks 3 views its 3 layers as 3 blocks. The passes are said before
    any work and the time after the first batch."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    hf = VideoMAEForPreTraining(VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, hidden_size=64,
                                               num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                                               decoder_hidden_size=32, decoder_num_hidden_layers=1,
                                               decoder_num_attention_heads=2, decoder_intermediate_size=64))
    hf.save_pretrained(tmp_path / "hf")
    with pytest.raises(SystemExit, match=r"--blocks 2: the encoder has 3 layers.*one of \[1, 3\]"):
        main(["analyze", str(tmp_path / "hf"), "--data", "digits,n=16", "--blocks", "2", "--out", str(tmp_path / "b")])
    assert not (tmp_path / "b").exists()
    main(["analyze", str(tmp_path / "hf"), "--data", "digits,n=16", "--blocks", "3", "--out", str(tmp_path / "a"),
          "--batch-size", "8", "--threads", "1"])
    said = capsys.readouterr().out
    assert "4 feature passes, 64 clip encodings to do" in said  # test and train, each also occluded
    assert "digits,n=16: test occluded, 16 clips" in said and "--no-occlusion skips them" in said
    assert said.count("analyze: first batch 8 clips in") == 1 and "clip encodings left take about" in said
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    layers = {r["layer"] for r in rows if r["metric"] == "probe_acc" and r["layer"]}
    assert layers == {1, 2, 3} and {r["regime"] for r in rows} == {"pretrained"}
    blocks = {r["block"] for r in rows if r["metric"] == "probe_acc" and r["block"]}
    assert blocks == {1, 2, 3} and {r["K"] for r in rows} == {3}
    assert {r["block"] for r in rows if r["metric"] == "occlusion_drop"} == {1, 2, 3}
    assert [r["block"] for r in rows if r["metric"] == "recon_loss"] == [3]  # the one decoder reads the last layer
    probe = {(r["block"], r["layer"]): r["value"] for r in rows if r["metric"] == "probe_acc" and r["target"] == "mean"}
    assert all(probe[(k, None)] == probe[(None, k)] for k in (1, 2, 3))  # a block of one layer is that layer
    assert (tmp_path / "a" / "report.html").exists()


def test_torch_probe_backend_agrees_with_sklearn():
    from blockmae.analysis.probes import Probes
    from blockmae.eval.features import Features

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=(90, 2))
    layers = [rng.normal(size=(90, 8)) + y[:, :1] * (i + 1) * 0.5 for i in range(2)]
    feats = Features(layers, y, ["a", "b"], key="x")
    results = {}
    for backend in ("sklearn", "torch"):
        probes = Probes(backend, layers=True)
        results[backend] = [probes.accuracies(feats, None, kind, 1 if kind == "block" else 2, [1, 1])
                            for kind in ("block", "layer")]
    for a, b in zip(results["sklearn"], results["torch"]):
        assert a.keys() == b.keys() == {"a", "b", "mean"}
        assert all(abs(a[k] - b[k]) <= 0.02 for k in a)  # at most one clip of 30 per fold apart
