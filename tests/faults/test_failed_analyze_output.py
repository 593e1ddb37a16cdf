"""A failed `blockmae analyze` leaves no empty --out directory behind, and never touches one that existed before."""

import pytest

from blockmae import hub
from blockmae.report.analyze import analyze
from blockmae.cli import main
from blockmae.config import config_path, load_config

SMALL = ["model.depth=4", "model.width=32", "model.heads=2", "model.partition=2"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A Hugging Face directory: a source `describe` accepts without training anything."""
    return hub.save_hf(hub.build_model(load_config(config_path("tiny"), SMALL)),
                       tmp_path_factory.mktemp("analyze") / "hf")


def failures(tmp_path, source):
    """(arguments, message): a missing source, an unknown dataset, and a spec that parses but fails once built."""
    return [
        ([str(tmp_path / "nowhere"), "--data", "digits,n=8"], "does not exist"),
        ([str(source), "--data", "digits,n=8", "--data", "gratingz"], "unknown dataset 'gratingz'"),
        ([str(source), "--data", f"list:{tmp_path / 'missing.txt'}"], "missing.txt"),
    ]


def test_a_failure_leaves_no_directory(tmp_path, source):
    out = tmp_path / "a" / "analysis"
    for args, message in failures(tmp_path, source):
        with pytest.raises(SystemExit, match=message):
            main(["analyze", *args, "--out", str(out)])
        assert not out.exists(), args
    with pytest.raises(FileNotFoundError, match="does not exist"):  # the library call too
        analyze([str(tmp_path / "nowhere")], ["digits,n=8"], out)
    assert not out.exists()


def test_a_directory_that_existed_is_left_as_it_was(tmp_path, source):
    for keep_empty in (False, True):
        out = tmp_path / f"mine-{keep_empty}"
        out.mkdir()
        if not keep_empty:
            (out / "notes.txt").write_text("earlier results")
        for args, message in failures(tmp_path, source):
            with pytest.raises(SystemExit, match=message):
                main(["analyze", *args, "--out", str(out)])
            assert out.is_dir()
            assert sorted(p.name for p in out.rglob("*")) == ([] if keep_empty else ["notes.txt"])
        if not keep_empty:
            assert (out / "notes.txt").read_text() == "earlier results"
