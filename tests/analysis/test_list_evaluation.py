"""`blockmae analyze` on your own `list:` videos: a single list is one set, cross-validated over source videos
(grouped: clips of one video never sit on both sides of a fold), so random labels score chance; a list with a
held-out `test=` list is evaluated train -> test as given."""

import json

import numpy as np
import pytest
from scipy.stats import binomtest

from blockmae.cli import main
from blockmae.eval import probe_folds
from helpers import write_video

pytestmark = pytest.mark.slow  # a pretraining run and real videos

FAST = ["train.max_steps=2", "train.batch_size=4", "train.progress=false", "model.partition=2", "model.depth=4",
        "model.width=32", "model.heads=2", "data.train=digits,n=8", "model.frames=4"]
CLASSES, GROUPS, CLIPS_PER_GROUP = 4, 20, 2


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """40 clips, 2 per UCF101-style group (v_X_gNN_cMM, near twins), random labels (one per group, 5 groups per
    class); a pretrained tiny run."""
    root = tmp_path_factory.mktemp("own_videos")
    group_labels = np.random.default_rng(11).permutation(np.repeat(np.arange(CLASSES), GROUPS // CLASSES))
    lines = []
    for g, label in enumerate(group_labels, 1):
        for c in range(1, CLIPS_PER_GROUP + 1):
            name = f"v_X_g{g:02d}_c{c:02d}.avi"
            write_video(root / name, shade=11 * g + c)
            lines.append(f"{name} {label}")
    (root / "videos.txt").write_text("\n".join(lines) + "\n")
    (root / "train.txt").write_text("\n".join(lines[:28]) + "\n")
    (root / "test.txt").write_text("\n".join(lines[28:]) + "\n")
    run = root / "run"
    main(["pretrain", "tiny", *FAST, "--out", str(run)])
    return root, run


def analyse(run, spec, out):
    main(["analyze", str(run), "--data", f"{spec},rate=2", "--blocks-only", "--no-occlusion", "--save-features",
          "--out", str(out), "--batch-size", "8"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["dataset"] == "list"]


def saved(out, split):
    files = sorted((out / "features").glob(f"*_list_{split}.npz"))
    return np.load(files[0]) if files else None


def test_a_single_list_is_cross_validated_over_videos_and_random_labels_score_chance(videos, tmp_path):
    root, run = videos
    out = tmp_path / "single"
    rows = analyse(run, f"list:{root / 'videos.txt'}", out)
    scored = [r for r in rows if r["metric"] in ("probe_acc", "knn_acc") and r["target"] == "label"]
    assert {r["metric"] for r in scored} == {"probe_acc", "knn_acc"}
    assert all(r["split"] is None for r in scored)  # the cross-validation kind of row
    chance = next(r["value"] for r in rows if r["metric"] == "chance_acc" and r["target"] == "label")
    assert chance == 1 / CLASSES
    # every block's probe and kNN: chance inside its interval over the 20 independent videos, 95% for the family
    # (Bonferroni); the leak this guards against scored kNN 56-60% and the probe 40% on 48 videos
    for r in scored:
        low, high = binomtest(round(r["value"] * GROUPS), GROUPS).proportion_ci(1 - 0.05 / len(scored), "wilson")
        print(f"random labels: {r['metric']} block {r['block']} {r['value']:.3f} [{low:.3f}, {high:.3f}]")
        assert low <= chance <= high, r
    final = max(r["block"] for r in scored)
    r_at_1 = next(r["value"] for r in rows if r["metric"] == "retrieval_r@1" and r["block"] == final
                  and r["target"] == "mean")
    assert r_at_1 <= 0.5  # a clip's twin in its own group is no hit
    # the retrieval gallery needs a separate train set: a single set has none of its rows
    assert not [r for r in rows if r["metric"].startswith("gallery_")]
    # features of the evaluation pass only, grouped by video; never the random crops of the train pass
    assert saved(out, "train") is None and not list((out / "features").glob("*train*"))
    test = saved(out, "test")
    groups = test["groups"]
    assert len(test["y"]) == GROUPS * CLIPS_PER_GROUP and len(np.unique(groups)) == GROUPS
    for train_idx, test_idx in probe_folds(test["y"][:, 0], groups=groups):
        assert not set(groups[train_idx]) & set(groups[test_idx])


def test_a_held_out_test_list_is_used_as_given(videos, tmp_path):
    root, run = videos
    out = tmp_path / "pair"
    rows = analyse(run, f"list:{root / 'train.txt'},test=test.txt", out)
    scored = [r for r in rows if r["metric"] in ("probe_acc", "knn_acc", "retrieval_map")]
    assert {r["metric"] for r in scored} == {"probe_acc", "knn_acc", "retrieval_map"}
    assert all(r["split"] == "test" for r in scored)
    n_test = len((root / "test.txt").read_text().split("\n")) - 1
    assert len(saved(out, "test")["y"]) == n_test == 12
    assert len(saved(out, "train")["y"]) == 28
