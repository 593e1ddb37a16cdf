"""Every bad input the user can type ends in one line naming the problem, and a non-zero exit."""

import subprocess
import sys

import pytest

from blockmae.cli import main

FAST = ["train.max_steps=2", "train.batch_size=2", "data.train=digits,n=8", "train.progress=false"]


@pytest.mark.parametrize("yaml_text, message", [
    ("- model\n- train\n", "must hold a mapping of sections"),
    ("train:\n  lr: 1.0e-3\n  lr: 2.0e-3\n", "key 'lr' appears twice"),
])
def test_bad_yaml_files(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(SystemExit, match=message):
        main(["pretrain", str(path), "--out", str(tmp_path / "run")])


@pytest.mark.parametrize("overrides, message", [
    (["train.max_steps=0"], "train.max_steps=0 must be at least 1"),
    (["train.epochs=2"], "are both set; set one"),
    (["train.max_steps=null", "train.epochs=-1"], "train.epochs=-1 must be at least 1"),
])
def test_bad_run_lengths(tmp_path, overrides, message):
    with pytest.raises(SystemExit, match=message):
        main(["pretrain", "tiny", *overrides, "--out", str(tmp_path / "run")])


def test_out_that_is_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a directory")
    with pytest.raises(SystemExit, match="is a file"):
        main(["pretrain", "tiny", *FAST, "--out", str(target)])
    assert target.read_text() == "not a directory"


@pytest.mark.slow
def test_non_finite_loss_is_one_line_and_non_zero(tmp_path):
    done = subprocess.run([sys.executable, "-m", "blockmae", "pretrain", "tiny", *FAST, "train.lr=1e30",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert done.returncode == 1
    assert "loss is nan" in done.stderr.lower() or "loss is inf" in done.stderr.lower()
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_failed_start_leaves_no_directory(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match="unknown dataset"):
        main(["pretrain", "tiny", *FAST, "data.train=digitz", "--out", str(out)])
    assert not out.exists()


def test_help_names_every_built_in_config(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one line per option: argparse would break 'deit-ti' at its hyphen
    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in ("tiny", "paper/deit-s", "paper/deit-ti"))


def test_analyze_checks_every_data_spec_and_its_out_before_working(tmp_path):
    with pytest.raises(SystemExit, match="unknown dataset 'gratingz'"):
        main(["analyze", str(tmp_path / "nowhere"), "--data", "digits,n=8", "--data", "gratingz", "--out",
              str(tmp_path / "a")])
    taken = tmp_path / "file"
    taken.write_text("x")
    for command in (["analyze", str(tmp_path), "--data", "digits,n=8"], ["demo", "--quick"]):
        with pytest.raises(SystemExit, match="is a file"):
            main([*command, "--out", str(taken)])
