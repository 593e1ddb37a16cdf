"""A regime is one entry in `blockmae.regimes.REGIMES`: adding one there is enough to validate, train and name
it, and a regime's settings (a new one included) are declared in that entry alone."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from safetensors.torch import load_file

from blockmae.config import ConfigError
from blockmae.model import BlockMAE
from blockmae.regimes import (REGIMES, Plan, Regime, Settings, StagePlan, blockwise_regimes, color_of, display_name,
                              uniform)
from blockmae.train.engine import pretrain
from blockmae.train.step import Micro, Stepper
from helpers import free_port, join_as_rank, small_config


def _stage_one_frozen(k: int, phase: int, settings) -> Plan:
    """Simultaneous training of every stage but the first, which stays at its initialisation."""
    return Plan((StagePlan(frozen=True),) + (StagePlan(),) * (k - 1), k)


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


# ---------------------------------------------------------------- a regime with a setting no other regime has


@dataclass(frozen=True)
class TopWeight(Settings):
    top_weight: float = 2.0  # the top stage's loss weight; the others weigh 1

    def check(self, partition: list[int], patch: int) -> None:
        if self.top_weight < 0:
            raise ConfigError(f"train.regime_settings.top_weight={self.top_weight} must be >= 0")


WEIGHTED = Regime("weighted-top", "Weighted top", "#654321", blockwise=True, settings=TopWeight,
                  plan=lambda k, phase, s: Plan(tuple(StagePlan(weight=s.top_weight if i == k - 1 else 1.0)
                                                      for i in range(k)), k))

# scenes, not digits: no scikit-learn import in every rank's fresh process (as tests/train/test_distributed.py)
FAST = ["data.train=scenes,n=48", "train.batch_size=4", "train.progress=false", "train.log_every=1",
        "model.image_size=16", "model.patch=4", "model.width=32", "model.heads=2", "model.decoder.width=16",
        "model.decoder.heads=1", "model.partition=2", "train.lr=1e-2", "train.max_steps=4",
        "train.checkpoint_every=2", "train.accum_steps=2", "train.device=cpu"]


@pytest.fixture
def weighted(monkeypatch):
    monkeypatch.setitem(REGIMES, WEIGHTED.name, WEIGHTED)


def _weights(run, step=4):
    return load_file(str(Path(run) / "checkpoints" / str(step) / "model.safetensors"))


def test_a_new_setting_is_read_checked_and_saved_from_the_regime_entry_alone(weighted, tmp_path):
    cfg = small_config("train.regime=weighted-top", "model.partition=2", "train.regime_settings.top_weight=3")
    assert cfg.train.regime_settings == TopWeight(3.0)
    assert small_config("train.regime=weighted-top").train.regime_settings == TopWeight()  # the default
    with pytest.raises(ConfigError, match="train.regime_settings.top_weight=-1.0 must be >= 0"):
        small_config("train.regime=weighted-top", "train.regime_settings.top_weight=-1")
    with pytest.raises(ConfigError, match="did you mean 'train.regime_settings.top_weight'"):
        small_config("train.regime=weighted-top", "train.regime_settings.top_weigth=1")
    with pytest.raises(ConfigError, match="top_weight: expected a number"):
        small_config("train.regime=weighted-top", "train.regime_settings.top_weight=heavy")
    # another regime's setting, as a study's overrides set it across a grid of regimes: dropped
    assert small_config("train.regime_settings.top_weight=3").train.regime_settings == Settings()

    # the plan weighs the top stage's loss: its gradient is 3x that of plain simultaneous training, stage 1's equal
    model = BlockMAE(cfg.model)
    g = torch.Generator().manual_seed(1)
    video, mask = torch.randn(2, 3, 4, 32, 32, generator=g), model.make_mask(2, g)
    grads = []
    for plan in (WEIGHTED.plan_for(2, 0, cfg.train), uniform(2)):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same decoder-masking draws
        Stepper(model).backward(plan, [Micro(video, mask)], 1)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    weighted_grads, plain = grads
    torch.testing.assert_close(weighted_grads["layers.3.mlp.fc1.weight"], 3 * plain["layers.3.mlp.fc1.weight"])
    assert torch.equal(weighted_grads["layers.0.mlp.fc1.weight"], plain["layers.0.mlp.fc1.weight"])

    pretrain(small_config(*FAST, "train.regime=weighted-top", "train.regime_settings.top_weight=3"), tmp_path / "run")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["train"]["regime_settings"] == {"top_weight": 3.0}


def test_the_new_regime_at_weight_one_trains_what_simultaneous_trains(weighted, tmp_path):
    pretrain(small_config(*FAST, "train.regime=weighted-top", "train.regime_settings.top_weight=1"), tmp_path / "w")
    pretrain(small_config(*FAST, "train.regime=simultaneous"), tmp_path / "sim")
    a, b = _weights(tmp_path / "w"), _weights(tmp_path / "sim")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _worker(rank: int, world: int, port: int, overrides: list[str], out: str) -> None:
    join_as_rank(rank, world, port)
    REGIMES[WEIGHTED.name] = WEIGHTED  # a fresh process: the test's regime is added there as in the test
    pretrain(small_config(*FAST, *overrides), out)


@pytest.mark.slow
@pytest.mark.usefixtures("single_thread")
def test_the_new_regime_trains_with_ddp_as_in_one_process(weighted, tmp_path):
    overrides = ["train.regime=weighted-top", "train.regime_settings.top_weight=3"]
    pretrain(small_config(*FAST, *overrides), tmp_path / "one")
    mp.spawn(_worker, args=(2, free_port(), overrides + ["dist.mode=ddp"], str(tmp_path / "ddp")), nprocs=2,
             join=True)
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "ddp")
    assert a.keys() == b.keys()
    bad = [k for k in a if not torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4)]
    assert not bad, f"{len(bad)} tensors differ, e.g. {bad[0]}"
    assert not torch.equal(a["layers.1.mlp.fc1.weight"], _weights(tmp_path / "one", 2)["layers.1.mlp.fc1.weight"])
