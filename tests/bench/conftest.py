"""A run two bench test files read: one quick two-configuration bench from the command line."""

import contextlib
import io
import json

import pytest

SMALL = ["model.frames=4", "model.image_size=16", "model.width=48", "model.decoder.width=32"]  # the tiny preset, smaller


@pytest.fixture(scope="session")
def quick_cli_bench(tmp_path_factory):
    """`blockmae bench --quick --configs hf,e2e` (each configuration in a worker process of its own), run once for
    test_cli_bench.py and test_harness.py: (what it printed, the results it wrote to --json, that JSON's path)."""
    from blockmae.cli import main

    path = tmp_path_factory.mktemp("bench") / "bench.json"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["bench", "--quick", "--configs", "hf,e2e", "--device", "cpu", "--threads", "1", "--steps", "1",
              "--json", str(path)] + [f"--set={s}" for s in SMALL])
    return out.getvalue(), json.loads(path.read_text()), path
