"""The training loop: every regime runs, resumes exactly, stops cleanly, keeps checkpoints safe."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

import blockmae.model.blockwise as blockwise
from blockmae.config import ConfigError
from blockmae.checkpoint import checkpoint_steps
from blockmae.errors import NonFiniteLoss
from blockmae.train.engine import pretrain
from helpers import small_config

FAST = ["data.train=digits,n=48", "train.batch_size=4", "train.progress=false", "train.log_every=1",
        "model.image_size=16", "model.patch=4", "model.width=32", "model.heads=2", "model.decoder.width=16",
        "model.decoder.heads=1", "model.partition=2", "train.lr=1e-2"]


def _cfg(*extra):
    return small_config(*FAST, *extra)


def _weights(run, step):
    return load_file(str(run / "checkpoints" / str(step) / "model.safetensors"))


@pytest.mark.parametrize("regime", ["simultaneous", "sequential", "e2e", "deep-supervision"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, regime):
    full = tmp_path / "full"
    pretrain(_cfg(f"train.regime={regime}", "train.max_steps=6", "train.checkpoint_every=3", "train.accum_steps=2"), full)
    # Interrupt after step 3: only its checkpoint and the log lines up to it survive (plus a stray later line).
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "checkpoints" / "6")
    (cut / "summary.json").unlink()
    pretrain(_cfg(f"train.regime={regime}", "train.max_steps=6", "train.checkpoint_every=3", "train.accum_steps=2"), cut)
    a, b = _weights(full, 6), _weights(cut, 6)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (cut / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3, 4, 5, 6]
    assert log == [json.loads(line) | {"clips_per_s": row["clips_per_s"]}
                   for line, row in zip((full / "log.jsonl").read_text().splitlines(), log)]


def test_run_files_and_losses_per_stage(tmp_path):
    summary = pretrain(_cfg("train.regime=sequential", "train.max_steps=4", "train.checkpoint_every=2"), tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == [1, 1, 2, 2]
    assert rows[0]["losses"][1] is None and rows[-1]["losses"][0] is None  # each phase trains one stage
    assert {"step", "epoch", "losses", "lr", "clips_per_s"} <= rows[0].keys()
    assert (tmp_path / "config.yaml").read_text().count("warmup_steps") == 1
    state = torch.load(tmp_path / "checkpoints" / "4" / "state.pt", weights_only=True)
    assert state["step"] == 4 and "optimizer" in state and "rng" in state
    assert len(summary["held_out"]["losses"]) == 2 and all(v > 0 for v in summary["held_out"]["losses"])
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_keep_last_and_permanent_snapshots(tmp_path):
    pretrain(_cfg("train.max_steps=7", "train.checkpoint_every=1", "train.keep_last=2", "train.snapshot_every=3"), tmp_path)
    assert checkpoint_steps(tmp_path) == [3, 6, 7]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = blockwise.reconstruction_loss

    def poisoned(pred, target):
        calls["n"] += 1
        loss = real(pred, target)
        return loss * float("nan") if calls["n"] == 2 * 3 + 2 else loss  # step 4, stage 2

    monkeypatch.setattr(blockwise, "reconstruction_loss", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"stage 2 loss is nan at step 4.*checkpoints/2"):
        pretrain(_cfg("train.max_steps=6", "train.checkpoint_every=2"), tmp_path)
    assert checkpoint_steps(tmp_path) == [2]
    assert all(torch.isfinite(v).all() for v in _weights(tmp_path, 2).values())


def test_resuming_with_a_different_config_is_refused(tmp_path):
    pretrain(_cfg("train.max_steps=2"), tmp_path)
    with pytest.raises(ConfigError, match="different config \\(train.lr\\)"):
        pretrain(_cfg("train.max_steps=4", "train.lr=0.5"), tmp_path)
    pretrain(_cfg("train.max_steps=3"), tmp_path)  # extending a run is allowed
    assert checkpoint_steps(tmp_path)[-1] == 3


def test_memory_lean_and_standard_steps_train_identically(tmp_path):
    pretrain(_cfg("train.max_steps=3", "train.memory_lean=true"), tmp_path / "lean")
    pretrain(_cfg("train.max_steps=3", "train.memory_lean=false"), tmp_path / "std")
    a, b = _weights(tmp_path / "lean", 3), _weights(tmp_path / "std", 3)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_loader_workers_do_not_change_what_is_learned(tmp_path):
    pretrain(_cfg("train.max_steps=3", "data.num_workers=0"), tmp_path / "w0")
    pretrain(_cfg("train.max_steps=3", "data.num_workers=2"), tmp_path / "w2")
    a, b = _weights(tmp_path / "w0", 3), _weights(tmp_path / "w2", 3)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_autocast_matches_float32_on_the_same_steps(tmp_path):
    """Same weights, batches and masks: bf16 autocast rounds each product to 8 bits of mantissa (~4e-3), and a mean
    over thousands of them lands within 2e-3 of float32 on the first step; after two updates the held-out losses
    still agree to 2e-3. They must differ at all: equal losses would mean autocast never ran."""
    full, half = (pretrain(_cfg("train.max_steps=2", f"train.amp={amp}"), tmp_path / amp) for amp in ("none", "bf16"))
    assert half["first_losses"] != full["first_losses"]
    assert half["first_losses"] == pytest.approx(full["first_losses"], rel=2e-3)
    assert half["held_out"]["losses"] == pytest.approx(full["held_out"]["losses"], rel=2e-3)


def test_decoder_masking_draws_depend_on_seed_step_micro_and_stage_only():
    from blockmae.train.batches import decoder_draws

    whole = decoder_draws(0, 5, 1, rows=4)
    assert torch.equal(decoder_draws(0, 5, 1, rows=4, pick=slice(2, 4))(1, 20, 0.5), whole(1, 20, 0.5)[2:])  # a rank
    assert torch.equal(whole(1, 20, 0.5), whole(1, 20, 0.5))  # no shared generator: order of stages does not matter
    assert whole(1, 20, 0.5).shape == (4, 10)
    others = [decoder_draws(0, 5, 1, rows=4)(0, 20, 0.5), decoder_draws(0, 6, 1, rows=4)(1, 20, 0.5),
              decoder_draws(0, 5, 0, rows=4)(1, 20, 0.5), decoder_draws(1, 5, 1, rows=4)(1, 20, 0.5)]
    assert not any(torch.equal(other, whole(1, 20, 0.5)) for other in others)


def test_the_default_decoder_masking_follows_the_regime():
    ratio = {regime: _cfg(f"train.regime={regime}").model.decoder.mask_ratio
             for regime in ("e2e", "simultaneous", "overlap", "sequential", "blockwise-finetune")}
    assert ratio == {"e2e": 0.0, "simultaneous": 0.5, "overlap": 0.5, "sequential": 0.0, "blockwise-finetune": 0.0}
    assert _cfg("train.regime=simultaneous", "model.decoder.mask_ratio=0.0").model.decoder.mask_ratio == 0.0
