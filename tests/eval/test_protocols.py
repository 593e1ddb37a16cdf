"""Which clips fit and which score a probe: the folds are scikit-learn's, the split plan follows the data."""

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from blockmae.eval import probe_folds, split_plan


def test_folds_are_sklearns_stratified_shuffled_folds():
    labels = np.random.default_rng(0).integers(0, 4, 90)
    expected = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(np.zeros((90, 5)), labels))
    folds = probe_folds(labels)
    assert len(folds) == 3
    for (train, test), (train_ref, test_ref) in zip(folds, expected):
        assert np.array_equal(train, train_ref) and np.array_equal(test, test_ref)
    tested = np.sort(np.concatenate([test for _, test in folds]))
    assert np.array_equal(tested, np.arange(90))  # every clip scored exactly once
    other = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=7).split(labels, labels))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(probe_folds(labels, folds=5, seed=7), other))


@pytest.mark.parametrize("splits, evaluate, fit, row_split", [
    (["train", "test"], "test", "train", "test"),
    (["test", "train", "val"], "test", "train", "test"),
    (None, "train", None, None),  # a single set: cross-validated
    ([], "train", None, None),
    (["all"], "all", None, None),
    (["train", "val"], "train", None, None),
])
def test_split_plan(splits, evaluate, fit, row_split):
    plan = split_plan(splits)
    assert (plan.evaluate, plan.fit, plan.row_split) == (evaluate, fit, row_split)


def test_chance_is_the_majority_class_share_per_target():
    from collections import Counter

    from blockmae.eval.protocols import chance_accuracies

    rng = np.random.default_rng(1)
    labels = np.stack([rng.choice(3, 50, p=[0.6, 0.3, 0.1]), rng.integers(0, 5, 50), np.full(50, 7)], axis=1)
    chance = chance_accuracies(labels, ["a", "b", "c"])
    direct = {name: Counter(labels[:, t].tolist()).most_common(1)[0][1] / 50 for t, name in enumerate("abc")}
    assert {k: chance[k] for k in "abc"} == pytest.approx(direct)
    assert chance["c"] == 1.0 and chance["a"] > 0.4  # one class only; a skewed target
    assert chance["mean"] == pytest.approx(sum(direct.values()) / 3)
