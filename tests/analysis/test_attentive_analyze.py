"""`blockmae analyze --attentive` end to end on a tiny run: attentive-probe rows in the linear probe's layout; the
study file's `attentive` key."""

import json

import numpy as np
import pytest
import yaml

from blockmae.analysis.extraction import FeatureStore
from blockmae.analysis.options import Options
from blockmae.analysis.sources import Source
from blockmae.cli import main
from blockmae.config import to_dict
from blockmae.study import load_study
from helpers import small_config

# 4-frame clips in 8x8 patches: 32 tokens per clip where the preset has 256 (the attentive probe attends over them)
TINY = ["train.max_steps=2", "train.batch_size=4", "data.train=digits,n=8", "train.progress=false",
        "model.depth=4", "model.partition=2", "model.frames=4", "model.patch=8"]


@pytest.mark.slow  # a trained run and a whole analysis
def test_analyze_attentive_writes_rows_for_every_block_layer_and_target(tmp_path, single_thread):
    main(["pretrain", "tiny", "train.regime=simultaneous", *TINY, "--out", str(tmp_path / "run")])
    out = tmp_path / "analysis"
    main(["analyze", str(tmp_path / "run"), "--data", "digits,n=24", "--data", "gratings2,n=30", "--attentive",
          "--no-occlusion", "--out", str(out), "--batch-size", "8"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]

    def where(metric, dataset):
        return {(r["split"], r["block"], r["layer"], r["target"]) for r in rows
                if r["metric"] == metric and r["dataset"] == dataset}
    for dataset in ("digits", "gratings2"):  # train -> test, and cross-validation
        attentive = where("attentive_probe_acc", dataset)
        assert attentive == where("probe_acc", dataset)
        assert {b for _, b, _, _ in attentive if b} == {1, 2} and {i for _, _, i, _ in attentive if i} == {1, 2, 3, 4}
        assert "mean" in {t for *_, t in attentive} and len({t for *_, t in attentive}) > 1
    values = [r["value"] for r in rows if r["metric"] == "attentive_probe_acc"]
    assert all(0.0 <= v <= 1.0 for v in values) and len(set(values)) > 1
    shares = {(r["dataset"], r["block"], r["target"]): r["value"] for r in rows
              if r["metric"] == "attentive_probe_acc" and r["block"]}
    for (dataset, block, target), value in shares.items():  # a block shares its last layer's probe
        layer = {r["value"] for r in rows if r["metric"] == "attentive_probe_acc" and r["dataset"] == dataset
                 and r["layer"] == 2 * block and r["target"] == target}
        assert layer == {value}
    tokens = sorted((out / "cache").glob("*.tokens.npz"))
    assert len(tokens) == 3  # digits train and test, gratings2's one set
    with np.load(tokens[0]) as z:
        assert z["layer_4"].dtype == np.float16 and z["layer_4"].ndim == 3
    html = (out / "report.html").read_text()
    assert "attentive_probe_acc" in html
    assert sorted(p.name for p in (out / "figures").glob("depth_decodability_attentive_*.png"))
    pngs = list((out / "figures").glob("*.png"))  # the analysis's figures, every one embedded in its report
    assert len(pngs) >= 6 and html.count("data:image/png;base64,") >= len(pngs)


def test_a_study_file_asks_for_the_attentive_probe(tmp_path):
    study = {"config": "tiny", "grid": {"train.seed": [0]}, "data": ["digits,n=24"]}
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(study))
    (tmp_path / "attentive.yaml").write_text(yaml.safe_dump(study | {"attentive": True}))
    assert load_study(tmp_path / "plain.yaml").attentive is False
    assert load_study(tmp_path / "attentive.yaml").attentive is True


def test_token_sets_are_cached_beside_the_pooled_features(tmp_path, monkeypatch):
    cfg = small_config("model.partition=2")
    source = Source("random", "none", "random", cfg.model.size, 2, 0, to_dict(cfg))
    model = source.model()
    store = FeatureStore(tmp_path, Options(batch_size=8, progress=False, device="cpu", layers=False))
    pooled = store.features(source, model, "digits,n=10", "train")
    assert pooled.tokens == {} and not list((tmp_path / "cache").glob("*.tokens.npz"))
    # the pooled cache alone does not serve a request for tokens: extracted again, the tokens cached beside it
    with_tokens = store.features(source, model, "digits,n=10", "train", tokens=True)
    assert sorted(with_tokens.tokens) == [2, 4]  # the blocks' last layers only (no layer probes)
    assert with_tokens.tokens[4].shape == (10, 2 * 4 * 4, 64) and with_tokens.tokens[4].dtype == np.float16
    assert all(np.array_equal(a, b) for a, b in zip(pooled.layers, with_tokens.layers))
    for layer in (2, 4):  # each token set is its layer's: its mean is the pooled feature (to float16 rounding)
        mean = with_tokens.tokens[layer].astype(np.float32).mean(1)
        assert np.allclose(mean, with_tokens.layers[layer - 1], atol=2e-3)
        assert not np.allclose(mean, with_tokens.layers[layer - 2], atol=2e-3)
    monkeypatch.setattr(store, "extract", lambda *a, **k: pytest.fail("re-extracted what the cache holds"))
    again = store.features(source, model, "digits,n=10", "train", tokens=True)
    assert all(np.array_equal(again.tokens[i], with_tokens.tokens[i]) for i in (2, 4))
