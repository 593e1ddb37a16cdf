"""convert never mixes two models in one place, counts stages from 1, and never guesses a shape."""

import pytest
import torch

import blockmae
from blockmae.cli import main

TINY_FAST = ["train.max_steps=2", "train.batch_size=2", "data.train=digits,n=8", "train.progress=false",
             "train.regime=e2e"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "run"
    main(["pretrain", "tiny", *TINY_FAST, "--out", str(out)])  # K=4
    return out


def test_refuses_to_write_into_a_run_directory_even_with_force(run, tmp_path):
    other = tmp_path / "other"
    main(["pretrain", "tiny", *TINY_FAST, "--out", str(other)])
    before = sorted(p.name for p in other.iterdir())
    for extra in ([], ["--force"]):
        with pytest.raises(SystemExit, match="is a blockmae run directory; convert never writes into one"):
            main(["convert", str(run), str(other), "--to", "hf", *extra])
    assert sorted(p.name for p in other.iterdir()) == before and not (other / "config.json").exists()


def test_non_empty_targets_need_force(run, tmp_path):
    target = tmp_path / "hf"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="is not empty; give a new directory, or --force"):
        main(["convert", str(run), str(target), "--to", "hf"])
    main(["convert", str(run), str(target), "--to", "hf", "--force"])
    assert (target / "config.json").is_file() and (target / "notes.txt").read_text() == "mine"

    pth = tmp_path / "videomae.pth"
    pth.write_bytes(b"precious")
    with pytest.raises(SystemExit, match="exists; give a new file name, or --force"):
        main(["convert", str(run), str(pth), "--to", "official"])
    assert pth.read_bytes() == b"precious"
    with pytest.raises(SystemExit, match="is a file; give a directory"):
        main(["convert", str(run), str(pth), "--to", "hf"])


def test_stage_counts_from_one_and_is_checked(run, tmp_path, capsys):
    with pytest.raises(SystemExit, match="--stage 7 does not exist: the model has 4 stage"):
        main(["convert", str(run), str(tmp_path / "a"), "--to", "hf", "--stage", "7"])
    with pytest.raises(SystemExit, match="--stage 0 does not exist"):
        main(["convert", str(run), str(tmp_path / "b"), "--to", "hf", "--stage", "0"])
    main(["convert", str(run), str(tmp_path / "c"), "--to", "hf", "--stage", "1"])
    assert "stage 1's decoder" in capsys.readouterr().out
    back = tmp_path / "back"
    main(["convert", str(tmp_path / "c"), str(back), "--to", "blockmae"])
    ours, theirs = blockmae.load(run), blockmae.load(back)
    assert torch.equal(theirs.decoders[0].head.weight, ours.decoders[0].head.weight)  # stage 1's, not the top's
    assert not torch.equal(ours.decoders[0].head.weight, ours.decoders[-1].head.weight)


def test_official_import_never_guesses_head_counts(run, tmp_path):
    pth = tmp_path / "videomae.pth"
    main(["convert", str(run), str(pth), "--to", "official"])
    # The tiny preset is 96 wide with 3 heads; width / 64 would say 1. Without --heads there is no telling.
    with pytest.raises(SystemExit, match="width 96 is not a known VideoMAE shape .*pass --heads"):
        main(["convert", str(pth), str(tmp_path / "a"), "--to", "blockmae", "--frames", "8", "--image-size", "32"])
    with pytest.raises(SystemExit, match="--decoder-heads"):
        main(["convert", str(pth), str(tmp_path / "b"), "--to", "blockmae", "--frames", "8", "--image-size", "32",
              "--heads", "3"])
    with pytest.raises(SystemExit, match="--heads 5 does not divide the width 96"):
        main(["convert", str(pth), str(tmp_path / "c"), "--to", "blockmae", "--frames", "8", "--image-size", "32",
              "--heads", "5", "--decoder-heads", "2"])
    main(["convert", str(pth), str(tmp_path / "d"), "--to", "blockmae", "--frames", "8", "--image-size", "32",
          "--heads", "3", "--decoder-heads", "2"])
    assert blockmae.load(tmp_path / "d").cfg.heads == 3


def test_known_official_shapes_take_their_head_counts():
    from blockmae.hub import official_model_config

    sd = {"encoder.patch_embed.proj.weight": torch.zeros(384, 3, 2, 16, 16),
          "encoder.blocks.0.mlp.fc1.weight": torch.zeros(1536, 384),
          "decoder.head.weight": torch.zeros(1536, 192), "decoder.blocks.0.norm1.weight": torch.zeros(192)}
    cfg = official_model_config(sd, frames=16, image_size=224)
    assert cfg["heads"] == 6 and cfg["decoder"]["heads"] == 3  # ViT-S: 6 heads, its decoder 192-wide with 3
