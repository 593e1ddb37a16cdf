"""Configs written before `train.regime_settings` keep loading: every run directory's config.yaml held each regime
setting as a key of its own under `train` (all six, whatever the regime), and older study files and overrides set
them there too."""

from pathlib import Path

import pytest
import yaml

from blockmae.config import ConfigError, builtin_configs, config_path, diff_configs, load_config, to_dict
from blockmae.regimes import REGIMES
from blockmae.study import load_study

ROOT = Path(__file__).resolve().parents[2]
BASE = ["model.frames=4", "model.image_size=32", "model.patch=8", "model.width=64", "model.heads=4", "model.depth=8",
        "model.decoder.width=32", "model.decoder.heads=2", "model.decoder.depth=1", "model.partition=4"]
# what every saved config held before (the defaults of the old schema), in its order after train.memory_lean
OLD_KEYS = {"phase_split": None, "overlap": 1, "interface_noise": 0.1, "finetune_steps": 100, "frozen_stages": 1,
            "target_pool": 2}


def _old_style(cfg, **values) -> dict:
    """`cfg` as a run directory of an earlier version saved it: the settings as train.<name>, no regime_settings."""
    data = to_dict(cfg)
    train = {k: v for k, v in data["train"].items() if k != "regime_settings"}
    at = list(train).index("memory_lean") + 1
    items = list(train.items())
    data["train"] = dict(items[:at] + list({**OLD_KEYS, **values}.items()) + items[at:])
    return data


@pytest.mark.parametrize("regime", list(REGIMES))
def test_an_old_run_directory_config_loads_as_the_same_config(tmp_path, regime):
    cfg = load_config(None, BASE + [f"train.regime={regime}"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_old_style(cfg), sort_keys=False))
    old = load_config(path)
    assert to_dict(old) == to_dict(cfg) and diff_configs(old, cfg) == []  # so such a run resumes


def test_old_keys_with_values_of_their_own_are_read_as_the_regime_settings(tmp_path):
    cfg = load_config(None, BASE + ["train.regime=overlap"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_old_style(cfg, overlap=2, interface_noise=0.5), sort_keys=False))
    assert to_dict(load_config(path))["train"]["regime_settings"] == {"overlap": 2}  # noise: the noisy regime's
    assert to_dict(load_config(path, ["train.overlap=1"]))["train"]["regime_settings"] == {"overlap": 1}
    assert to_dict(load_config(path, ["train.regime_settings.overlap=1"]))["train"]["regime_settings"] == \
        {"overlap": 1}  # an override wins over the file's old key, as over any key
    # the old key as an override, the old error: the new key named
    with pytest.raises(ConfigError, match="train.regime_settings.overlap=0 must be at least 1"):
        load_config(None, BASE + ["train.regime=overlap", "train.overlap=0"])
    frozen = load_config(None, BASE + ["train.regime=frozen-base", "train.frozen_stages=2"])
    assert frozen.train.regime_settings.frozen_stages == 2


def test_an_old_key_beside_a_different_new_one_is_refused_in_one_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"train": {"regime": "overlap", "overlap": 2, "regime_settings": {"overlap": 1}}}))
    with pytest.raises(ConfigError) as error:
        load_config(path, BASE)
    assert str(error.value) == ("train.overlap=2 and train.regime_settings.overlap=1 are both set; keep only "
                                "train.regime_settings.overlap")


def test_the_built_in_configs_and_the_studies_load_in_every_regime():
    for name in builtin_configs():
        for regime in REGIMES:
            load_config(config_path(name), [f"train.regime={regime}"])
    studies = sorted((ROOT / "studies").rglob("*.yaml"))
    assert studies
    for path in studies:
        if "config" in yaml.safe_load(path.read_text()):  # a study file (others are configs)
            load_study(path)  # every run of its grid, its old keys included
        else:
            load_config(path)
