"""The command line as a user runs it: every regime, convert both ways, errors that say what to do."""

import json

import pytest
import torch
from transformers import VideoMAEForPreTraining

import blockmae
from blockmae.cli import main

TINY_FAST = ["train.max_steps=4", "train.batch_size=2", "data.train=digits,n=8", "train.progress=false"]


@pytest.mark.parametrize("regime", ["e2e", "simultaneous", "sequential", "deep-supervision"])
def test_pretrain_every_regime_from_the_cli(tmp_path, capsys, regime):
    main(["pretrain", "tiny", f"train.regime={regime}", *TINY_FAST, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"blockmae: {regime}, K=4 stages [3, 3, 3, 3]" in out and "held-out" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["regime"] == regime and len(summary["held_out"]["losses"]) == 4
    model = blockmae.load(tmp_path)
    assert model.num_stages == 4 and not model.training


def test_convert_to_hugging_face_and_back(tmp_path):
    run = tmp_path / "run"
    main(["pretrain", "tiny", *TINY_FAST, "--out", str(run)])
    main(["convert", str(run), str(tmp_path / "hf"), "--to", "hf"])
    hf = VideoMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
    ours = blockmae.load(run)
    video = torch.randn(2, 3, 8, 32, 32)
    mask = ours.make_mask(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert abs(ours.losses(video, mask)[-1].item() - hf(video.transpose(1, 2), bool_masked_pos=mask).loss.item()) < 1e-4
    main(["convert", str(tmp_path / "hf"), str(tmp_path / "back"), "--to", "blockmae"])
    back = blockmae.load(tmp_path / "back")
    assert torch.equal(back.layers[5].attn.qkv.weight, ours.layers[5].attn.qkv.weight)
    assert torch.equal(back.decoders[0].head.weight, ours.decoders[-1].head.weight)
    assert blockmae.load(tmp_path / "hf").cfg.depth == 12  # a HF directory loads directly too


def test_convert_official_round_trip(tmp_path):
    run = tmp_path / "run"
    main(["pretrain", "tiny", *TINY_FAST, "train.regime=e2e", "model.partition=1", "--out", str(run)])
    main(["convert", str(run), str(tmp_path / "videomae.pth"), "--to", "official"])
    assert "encoder.blocks.11.attn.q_bias" in torch.load(tmp_path / "videomae.pth", weights_only=True)["model"]
    main(["convert", str(tmp_path / "videomae.pth"), str(tmp_path / "back"), "--to", "blockmae",
          "--frames", "8", "--image-size", "32", "--heads", "3", "--decoder-heads", "2"])
    a, b = blockmae.load(run).state_dict(), blockmae.load(tmp_path / "back").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_errors_name_the_problem(tmp_path, capsys):
    with pytest.raises(SystemExit, match="did you mean 'train.batch_size'"):
        main(["pretrain", "tiny", "train.batchsize=4", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="neither a file nor a built-in config"):
        main(["pretrain", "nonexistent.yaml", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="pass --frames and --image-size"):
        main(["convert", str(tmp_path / "x.pth"), str(tmp_path / "y"), "--to", "blockmae"])


def test_help_has_an_example_for_every_command(capsys):
    for command in ("pretrain", "convert", "datasets", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example:" in capsys.readouterr().out


def test_datasets_lists_the_built_in_specs(capsys):
    main(["datasets"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("digits", "gratings", "gratings2"))
