import pytest

from blockmae.config import ConfigError, load_config, partition_layers, save_config


def test_unknown_override_suggests_the_closest_key():
    with pytest.raises(ConfigError, match="unknown config key 'train.lrr'; did you mean 'train.lr'"):
        load_config(None, ["train.lrr=1e-3"])
    with pytest.raises(ConfigError, match="did you mean 'model.partition'"):
        load_config(None, ["model.partiton=4"])


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  size: vit-tiny\n  decoder:\n    dept: 2\n")
    with pytest.raises(ConfigError, match="'model.decoder.dept'; did you mean 'model.decoder.depth'"):
        load_config(path)


def test_overrides_are_typed_and_presets_expand():
    cfg = load_config(None, ["model.size=vit-small", "model.partition=[3,3,6]", "train.lr=1e-3", "train.grad_clip=null"])
    assert (cfg.model.width, cfg.model.heads, cfg.model.depth) == (384, 6, 12)
    assert cfg.model.partition == [3, 3, 6] and cfg.train.lr == 1e-3 and cfg.train.grad_clip is None
    assert cfg.model.decoder.width == 192
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer"):
        load_config(None, ["train.batch_size=lots"])


def test_shapes_that_do_not_divide_name_both_numbers():
    with pytest.raises(ConfigError, match="model.image_size=100 is not divisible by model.patch=16"):
        load_config(None, ["model.image_size=100"])
    with pytest.raises(ConfigError, match="model.frames=15 is not divisible by model.tubelet=2"):
        load_config(None, ["model.frames=15"])
    with pytest.raises(ConfigError, match="model.partition=5 does not divide model.depth=12"):
        load_config(None, ["model.partition=5"])
    with pytest.raises(ConfigError, match="sum to 11"):
        partition_layers([4, 4, 3], 12)
    with pytest.raises(ConfigError, match="model.decoder.depth has 2 entries but the model has 4 stages"):
        load_config(None, ["model.partition=4", "model.decoder.depth=[1,2]"])
    with pytest.raises(ConfigError, match=r"model.layer_scale=2.0 must be in \[0, 1\]"):
        load_config(None, ["model.layer_scale=2"])


def test_bad_choice_suggests(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'sequential'"):
        load_config(None, ["train.regime=sequental"])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["model.partition=4", "train.max_steps=7", "model.decoder.depth=[1,1,2,2]"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    assert "warmup_steps: null" in (tmp_path / "c.yaml").read_text()  # every default written out
