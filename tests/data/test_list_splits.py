"""How a `list:` spec splits its videos: one set unless a held-out list is named (`test=`/`val=`), source-video
groups for cross-validation, and `n=` subsets. No video is decoded here: datasets only read their lists."""

from collections import Counter

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from blockmae.data import available_datasets, build_dataset, spec_splits
from blockmae.eval import probe_folds, split_plan
from blockmae.eval.protocols import FOLD_SEED, FOLDS


def _build(spec, split="test", **kwargs):
    return build_dataset(spec, split, frames=4, image_size=16, **kwargs)


def _write(path, lines):
    path.write_text("".join(f"{name} {label}\n" for name, label in lines))
    return path


def test_a_single_list_is_one_set_read_through_its_evaluation_pass(tmp_path):
    listing = _write(tmp_path / "videos.txt", [(f"v{i}.avi", i % 2) for i in range(6)])
    splits = spec_splits(f"list:{listing}")
    assert splits == ("test",)
    plan = split_plan(splits)
    assert plan.fit is None and plan.evaluate == "test" and plan.row_split is None
    assert not _build(f"list:{listing}", plan.evaluate).train  # deterministic clips, not random crops
    # pretraining still reads the main list, as before
    main_list = [str(tmp_path / f"v{i}.avi") for i in range(6)]
    assert [e.path for e in _build(f"list:{listing}", "train").entries] == main_list


@pytest.mark.parametrize("held_out", ["test", "val"])
def test_a_held_out_list_makes_train_and_test(tmp_path, held_out):
    _write(tmp_path / "train.txt", [(f"a{i}.avi", i % 2) for i in range(6)])
    (tmp_path / "lists").mkdir()
    _write(tmp_path / "lists" / "held.txt", [(f"b{i}.avi", i % 2) for i in range(4)])
    spec = f"list:{tmp_path / 'train.txt'},{held_out}=lists/held.txt"
    plan = split_plan(spec_splits(spec))
    assert (plan.fit, plan.evaluate, plan.row_split) == ("train", "test", "test")
    assert len(_build(spec, "train")) == 6
    for split in ("test", "val"):  # either held-out list serves both held-out splits
        # the held-out list's path is relative to the main list, its entries to the main list's folder
        assert [e.path for e in _build(spec, split).entries] == [str(tmp_path / f"b{i}.avi") for i in range(4)]


def test_official_collections_keep_their_splits():
    listing = {d["name"]: d for d in available_datasets()}
    for name in ("ucf101:ARG", "hmdb51:ARG", "kinetics:ARG", "ssv2:ARG"):
        assert listing[name]["splits"] == ["train", "val", "test"]
    assert split_plan(spec_splits("ucf101:/nowhere")).fit == "train"
    assert spec_splits("gratings") is None


def test_ucf101_style_names_give_groups_and_folds_never_split_one(tmp_path):
    rng = np.random.default_rng(3)
    lines = [(f"v_A_g{g:02d}_c{c:02d}.avi", int(label))
             for g, label in zip(range(1, 13), rng.integers(0, 3, 12)) for c in range(1, 4)]
    dataset = _build(f"list:{_write(tmp_path / 'ucf.txt', lines)}")
    groups = dataset.groups()
    assert groups is not None and len(np.unique(groups)) == 12
    assert all(groups[i] == groups[i - i % 3] for i in range(len(lines)))  # three clips per group
    folds = probe_folds(dataset.all_labels()[:, 0].numpy(), groups=groups)
    assert len(folds) == FOLDS
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(len(lines)))
    # ungrouped folds of the same labels would have split groups: the grouping is what prevents it
    plain = probe_folds(dataset.all_labels()[:, 0].numpy())
    assert any(set(groups[tr]) & set(groups[te]) for tr, te in plain)


def test_views_of_one_entry_share_a_group_and_plain_names_have_none(tmp_path):
    listing = _write(tmp_path / "plain.txt", [(f"clip{i}.avi", i % 2) for i in range(6)])
    assert _build(f"list:{listing}").groups() is None
    views = _build(f"list:{listing},clips=2").groups()  # each entry yields 2 clips: its own group
    assert views is not None and len(np.unique(views)) == 6
    mixed = _write(tmp_path / "mixed.txt", [("v_A_g01_c01.avi", 0), ("v_A_g01_c02.avi", 0), ("other.avi", 1)])
    groups = _build(f"list:{mixed}").groups()
    assert groups[0] == groups[1] != groups[2]


def test_too_few_groups_for_the_folds_is_an_error():
    with pytest.raises(ValueError, match="at least 3 groups"):
        probe_folds(np.array([0, 1, 0, 1]), groups=np.array([0, 0, 1, 1]))


def test_gratings_folds_are_unchanged():
    labels = np.random.default_rng(0).integers(0, 5, 600)
    expected = StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(np.zeros((600, 1)), labels)
    for (train, test), (want_train, want_test) in zip(probe_folds(labels), expected, strict=True):
        assert np.array_equal(train, want_train) and np.array_equal(test, want_test)
    assert (FOLDS, FOLD_SEED) == (3, 0)


def test_n_picks_a_deterministic_stratified_subset(tmp_path):
    labels = [0] * 20 + [1] * 10 + [2] * 6 + [3] * 4
    listing = _write(tmp_path / "big.txt", [(f"v{i:02d}.avi", label) for i, label in enumerate(labels)])
    subset = _build(f"list:{listing},n=20")
    paths = [e.path for e in subset.entries]
    assert len(subset) == 20 and paths == sorted(paths)  # list order kept
    assert Counter(e.label for e in subset.entries) == {0: 10, 1: 5, 2: 3, 3: 2}
    assert [e.path for e in _build(f"list:{listing},n=20", "train", seed=5).entries] == paths  # same n, same videos
    assert [e.path for e in _build(f"list:{listing},n=20", "test").entries] == paths
    assert len({tuple(e.path for e in _build(f"list:{listing},n={n}").entries) for n in (8, 12)}) == 2
    assert len(_build(f"list:{listing},n=100")) == 40  # more than there are: all of them
    with pytest.raises(ValueError, match="option n='0' is not valid"):
        _build(f"list:{listing},n=0")


def test_n_is_an_option_of_every_video_spec():
    listing = {d["name"]: d for d in available_datasets()}
    for name in ("list:ARG", "ucf101:ARG", "hmdb51:ARG", "kinetics:ARG", "ssv2:ARG"):
        assert "stratified" in listing[name]["options"]["n"]["help"]
