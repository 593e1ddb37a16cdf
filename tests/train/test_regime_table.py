"""A regime is one entry in `blockmae.regimes.REGIMES`: adding one there is enough to validate, train and name it."""

import json

import torch
from safetensors.torch import load_file

from blockmae.model import BlockMAE
from blockmae.regimes import REGIMES, Plan, Regime, blockwise_regimes, color_of, display_name
from blockmae.train.engine import pretrain
from helpers import small_config


def _stage_one_frozen(k: int, phase: int, settings) -> Plan:
    """Simultaneous training of every stage but the first, which stays at its initialisation."""
    return Plan(True, (True,) * k, (True,) + (False,) * (k - 1), k)


def test_a_regime_added_in_one_place_trains_and_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(REGIMES, "throwaway", Regime("throwaway", "Throwaway", "#123456", blockwise=True,
                                                     plan=_stage_one_frozen))
    cfg = small_config("train.regime=throwaway", "model.partition=2", "data.train=digits,n=16", "train.batch_size=4",
                       "train.max_steps=3", "train.checkpoint_every=3", "train.log_every=1", "train.progress=false",
                       "train.lr=1e-2")
    torch.manual_seed(cfg.train.seed)
    initial = BlockMAE(cfg.model).state_dict()
    summary = pretrain(cfg, tmp_path)

    assert summary["regime"] == "throwaway"
    weights = load_file(str(tmp_path / "checkpoints" / "3" / "model.safetensors"))
    assert torch.equal(weights["layers.0.attn.qkv.weight"], initial["layers.0.attn.qkv.weight"])  # stage 1: frozen
    assert not torch.equal(weights["layers.2.attn.qkv.weight"], initial["layers.2.attn.qkv.weight"])  # stage 2 learns
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["losses"][0] for row in rows] == [None] * 3 and all(row["losses"][1] > 0 for row in rows)
    assert "throwaway" in blockwise_regimes()
    assert (display_name("throwaway"), color_of("throwaway")) == ("Throwaway", "#123456")
