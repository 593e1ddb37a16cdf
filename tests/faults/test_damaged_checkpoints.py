"""A damaged newest checkpoint: resume falls back to the newest intact one (keeping the damaged one aside),
analyze and convert name the damaged file, and a full disk while saving leaves the last checkpoint intact."""

import os
import stat

import pytest
import torch
from safetensors.torch import load_file

from blockmae.cli import main
from blockmae.config import config_path, load_config
from blockmae.errors import CheckpointWriteError
from blockmae import checkpoint
from blockmae.train.engine import pretrain

FAST = ["data.train=digits,n=16", "train.batch_size=4", "train.progress=false", "train.checkpoint_every=2",
        "train.keep_last=3", "train.log_every=1", "train.regime=e2e", "model.partition=2", "model.depth=4",
        "model.width=32", "model.heads=2"]


def cfg(steps: int):
    return load_config(config_path("tiny"), FAST + [f"train.max_steps={steps}"])


@pytest.fixture
def run(tmp_path):
    out = tmp_path / "run"
    pretrain(cfg(4), out)  # checkpoints 2 and 4
    return out


def test_files_are_readable_by_others_and_described_by_a_manifest(run):
    ckpt = run / "checkpoints" / "4"
    assert stat.S_IMODE((ckpt / "model.safetensors").stat().st_mode) & 0o044 == 0o044 & ~_umask()
    assert checkpoint.damage(ckpt) is None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("harm", ["truncate", "drop_state", "flip"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(run, tmp_path, capsys, harm):
    newest = run / "checkpoints" / "4"
    weights = newest / "model.safetensors"
    if harm == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif harm == "drop_state":
        (newest / "state.pt").unlink()
    else:
        data = bytearray(weights.read_bytes())
        data[-5] ^= 0xFF
        weights.write_bytes(bytes(data))
    problem = checkpoint.damage(newest)
    assert problem and {"truncate": "truncated", "drop_state": "state.pt is missing", "flip": "SHA-256"}[harm] in problem

    with pytest.raises(SystemExit, match=r"checkpoints/4 is damaged: .*the newest intact one is .*checkpoints/2"):
        main(["analyze", str(run), "--data", "digits,n=8", "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="is damaged"):
        main(["convert", str(run), str(tmp_path / "hf"), "--to", "hf"])

    pretrain(cfg(6), run)  # resumes from step 2, not from the damaged step 4
    out = capsys.readouterr().out
    assert "checkpoints/4 is damaged" in out and "resuming from" in out and "checkpoints/2" in out
    assert (run / "checkpoints" / "damaged-4").is_dir()  # kept for inspection
    reference = tmp_path / "reference"
    pretrain(cfg(6), reference)
    a = load_file(str(run / "checkpoints" / "6" / "model.safetensors"))
    b = load_file(str(reference / "checkpoints" / "6" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_full_disk_while_saving_leaves_the_last_checkpoint(run, monkeypatch):
    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", no_space)
    with pytest.raises(CheckpointWriteError, match=r"could not write checkpoint 6 .*No space left.*checkpoints/4.* is "
                                                   r"intact: make room and run the same command to resume"):
        pretrain(cfg(6), run)
    monkeypatch.undo()
    assert checkpoint.latest_intact_checkpoint(run)[0] == run / "checkpoints" / "4"
    assert not list((run / "checkpoints").glob("6")) and not list((run / "checkpoints").glob(".tmp-*"))
    pretrain(cfg(6), run)  # the disk has room again: it resumes and finishes
    assert checkpoint.damage(run / "checkpoints" / "6") is None
