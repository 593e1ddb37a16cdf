"""`blockmae demo --quick` end to end: the demo's whole path (pretrain, fitted monitors, analysis against three random
encoders, report) on a few clips and steps, and what it prints."""

import pytest

from blockmae.cli import main

pytestmark = pytest.mark.slow


def test_quick_demo_prints_each_stage_margin_and_the_probe_per_block(tmp_path, capsys):
    main(["demo", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert (tmp_path / "analysis" / "report.html").is_file()
    lines = out.splitlines()
    margins = next(line for line in lines if line.startswith("hierarchy: e2e-K4: held-out loss per stage"))
    assert len(margins.split(": ")[-1].split(";")[0].split(" / ")) == 4  # one margin per stage
    for label in ("e2e-K4", "random init (3 seeds, mean)"):
        probe = next(line for line in lines if line.startswith(f"hierarchy: {label}: probe accuracy per block"))
        assert len(probe.split(": ")[-1].split(" / ")) == 4
    assert "random init (3 seeds)  hierarchy" in out and "chance (majority)" in out
