"""A checkpoint whose pickle holds code (a class instance beside the tensors) is refused in one line naming the
file, never loaded with weights_only=False; plain-tensor checkpoints still load."""

import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import blockmae
from blockmae import hub
from blockmae.cli import main
from blockmae.config import config_path, load_config
from blockmae.errors import CodeInCheckpoint
from blockmae.train.engine import pretrain

SMALL = ["model.depth=4", "model.width=32", "model.heads=2", "model.partition=2"]


class Payload:
    """What a training script pickles beside its weights (its arguments, a scheduler...)."""

    def __init__(self):
        self.lr = 1e-3


class Trap:
    """Unpickling this runs os.mkdir: the refused file must never be unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


@pytest.fixture(scope="module")
def model():
    return hub.build_model(load_config(config_path("tiny"), SMALL))


def _hf_bin(model, root, extra=None):
    """A Hugging Face directory whose weights are a pytorch_model.bin (plus `extra` entries), no safetensors."""
    hf = hub.save_hf(model, root)
    sd = load_file(str(hf / "model.safetensors"))
    (hf / "model.safetensors").unlink()
    torch.save({**sd, **(extra or {})}, hf / "pytorch_model.bin")
    return hf


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "blockmae", *args], capture_output=True, text=True)


def _one_line_naming(done, path, cls):
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "weights_only" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert re.search(rf"{re.escape(str(path))} holds code, not plain weights \(its pickle refers to [^)]*{cls}\b",
                     lines[0]), lines[0]


@pytest.mark.slow  # the CLI in a process of its own: the one line it prints
def test_hugging_face_bin_holding_code_is_refused(model, tmp_path):
    hf = _hf_bin(model, tmp_path / "hf", {"extra": Payload(), "trap": Trap(tmp_path / "ran")})
    with pytest.raises(CodeInCheckpoint, match=re.escape(str(hf / "pytorch_model.bin")) + " holds code.*Payload.*"
                                               "save its state_dict beside config.json as model.safetensors"):
        blockmae.load(hf)
    out = tmp_path / "imported"
    _one_line_naming(_cli("convert", str(hf), str(out), "--to", "blockmae"), hf / "pytorch_model.bin", "Payload")
    assert not (tmp_path / "ran").exists() and not out.exists()  # nothing ran, nothing written


@pytest.mark.slow  # the CLI in a process of its own: the one line it prints
def test_official_pth_holding_code_is_refused(model, tmp_path):
    pth = tmp_path / "videomae.pth"
    torch.save({"model": hub.to_official(model.state_dict()), "args": Trap(tmp_path / "ran")}, pth)
    out = tmp_path / "imported"
    with pytest.raises(SystemExit, match=re.escape(str(pth)) + r" holds code.*mkdir.*re-save only its weights"):
        main(["convert", str(pth), str(out), "--to", "blockmae", "--frames", "8", "--image-size", "32"])
    torch.save({"model": hub.to_official(model.state_dict()), "args": Payload()}, pth,
               _use_new_zipfile_serialization=False)  # the legacy format names the class through another path
    _one_line_naming(_cli("convert", str(pth), str(out), "--to", "blockmae", "--frames", "8", "--image-size", "32"),
                     pth, "Payload")
    assert not (tmp_path / "ran").exists() and not out.exists()


def test_a_damaged_file_is_not_called_code(model, tmp_path):
    hf = _hf_bin(model, tmp_path / "hf")
    (hf / "pytorch_model.bin").write_bytes(b"precious")
    with pytest.raises(ValueError, match="is not a PyTorch checkpoint blockmae can read") as caught:
        blockmae.load(hf)
    assert not isinstance(caught.value, CodeInCheckpoint)


def test_plain_tensor_checkpoints_still_load(model, tmp_path):
    hf = _hf_bin(model, tmp_path / "hf")
    loaded = blockmae.load(hf)
    assert torch.equal(loaded.layers[2].attn.qkv.weight, model.layers[2].attn.qkv.weight)

    pth = hub.save_official(model, tmp_path / "videomae.pth")
    cfg = model.cfg
    main(["convert", str(pth), str(tmp_path / "back"), "--to", "blockmae", "--frames", str(cfg.frames),
          "--image-size", str(cfg.image_size), "--heads", str(cfg.heads), "--decoder-heads", str(cfg.decoder.heads)])
    back = blockmae.load(tmp_path / "back")
    assert torch.equal(back.layers[2].attn.qkv.weight, model.layers[2].attn.qkv.weight)


def test_resume_refuses_a_state_file_holding_code(tmp_path):
    fast = [*SMALL, "data.train=digits,n=8", "train.batch_size=2", "train.progress=false", "train.regime=e2e",
            "train.checkpoint_every=2"]
    run = tmp_path / "run"
    pretrain(load_config(config_path("tiny"), [*fast, "train.max_steps=2"]), run)
    ckpt = run / "checkpoints" / "2"
    torch.save({"step": 2, "extra": Payload()}, ckpt / "state.pt")
    (ckpt / "manifest.json").unlink()  # as a checkpoint from before manifests: its state.pt is read, not hashed
    with pytest.raises(CodeInCheckpoint, match=re.escape(str(ckpt / "state.pt")) + " holds code.*Payload"):
        pretrain(load_config(config_path("tiny"), [*fast, "train.max_steps=4"]), run)
