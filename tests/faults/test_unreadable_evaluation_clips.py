"""Evaluation never substitutes clips: an unreadable one is left out, counted and named (rows, report, terminal),
the numbers are those of the readable clips alone, and --strict makes it an error."""

import json

import pytest

from blockmae.cli import main
from helpers import write_video

pytestmark = pytest.mark.slow  # real processes / trained runs: `make test` runs it, `make test-fast` does not

FAST = ["train.max_steps=2", "train.batch_size=4", "train.progress=false", "model.partition=2", "model.depth=4",
        "model.width=32", "model.heads=2", "data.train=digits,n=8"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    lines = []
    for i in range(12):
        write_video(root / f"v{i}.avi", shade=20 * i, frames=12, step=7, bar=255 - 20 * i)
        lines.append(f"v{i}.avi {i % 2}")
    readable = "\n".join(lines) + "\n"
    (root / "readable.txt").write_text(readable)
    (root / "broken.avi").write_bytes(b"")  # zero bytes
    (root / "with_broken.txt").write_text(readable.replace("v5.avi 1", "broken.avi 1\nv5.avi 1"))
    run = root / "run"
    main(["pretrain", "tiny", *FAST, "model.frames=4", "--out", str(run)])
    return root, run


def analyse(root, run, listing, out, *extra):
    main(["analyze", str(run), "--data", f"list:{root / listing},rate=2", "--blocks-only", "--no-occlusion",
          "--out", str(out), *extra])
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_unreadable_clip_is_left_out_not_replaced(collection, tmp_path, capsys):
    root, run = collection
    clean = analyse(root, run, "readable.txt", tmp_path / "clean")
    broken = analyse(root, run, "with_broken.txt", tmp_path / "broken")
    assert "left out 1 unreadable clip(s) of list (test)" in capsys.readouterr().out
    rows = [r for r in broken if r["metric"] == "clips_left_out"]
    assert {r["split"] for r in rows} == {"test"}  # a single list is one set, read through its evaluation pass
    assert all(r["value"] == 1 and "broken.avi: empty" in r["files"][0] for r in rows)

    def numbers(rows):
        return {(r["metric"], r["block"], r["target"]): r["value"] for r in rows
                if r["metric"] in ("probe_acc", "retrieval_map", "cka_linear", "token_similarity") and "run2" not in r}
    # the same numbers as the collection without the broken file: each readable clip exactly once
    assert numbers(broken) == pytest.approx(numbers(clean), abs=1e-9)
    assert "Unreadable clips were left out" in (tmp_path / "broken" / "report.html").read_text()


def test_strict_makes_it_an_error(collection, tmp_path):
    root, run = collection
    with pytest.raises(SystemExit, match="broken.avi: empty"):
        analyse(root, run, "with_broken.txt", tmp_path / "strict", "--strict")
