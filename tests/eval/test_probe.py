import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from blockmae.eval import cv_probe, linear_probe, probe_targets, torch_linear_probe


def clusters(n, d, classes, spread, seed, centers_seed=0):
    """Gaussian class clusters; train and test share the centres (centers_seed) but not the draws (seed)."""
    centers = np.random.default_rng(centers_seed).normal(size=(classes, d)) * spread
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return centers[y] + rng.normal(size=(n, d)), y


def reference_pipeline():
    return Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=1000))])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_linear_probe_equals_sklearn_pipeline():
    xtr, ytr = clusters(200, 12, 4, 0.6, seed=1)
    xte, yte = clusters(150, 12, 4, 0.6, seed=2)
    expected = reference_pipeline().fit(xtr, ytr).score(xte, yte)
    assert linear_probe(xtr, ytr, xte, yte) == expected
    assert 0.0 <= expected <= 1.0


def test_cv_probe_equals_cross_val_score():
    x, y = clusters(180, 8, 3, 0.7, seed=3)
    splitter = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    expected = cross_val_score(reference_pipeline(), x, y, cv=splitter).mean()
    assert cv_probe(x, y) == pytest.approx(expected, abs=1e-12)


def test_cv_probe_stratifies_on_the_given_labels():
    x, y = clusters(180, 8, 3, 0.7, seed=4)
    other = np.random.default_rng(5).integers(0, 2, len(y))
    splits = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=7).split(x, other))
    expected = cross_val_score(reference_pipeline(), x, y, cv=splits).mean()
    assert cv_probe(x, y, seed=7, stratify_on=other) == pytest.approx(expected, abs=1e-12)


def test_cv_probe_score_x_scores_the_fitted_probe_on_other_features():
    x, y = clusters(150, 6, 3, 0.8, seed=6)
    noisy = x + np.random.default_rng(0).normal(size=x.shape) * 2
    accs = []
    for tr, te in StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(x, y):
        accs.append(reference_pipeline().fit(x[tr], y[tr]).score(noisy[te], y[te]))
    assert cv_probe(x, y, score_x=noisy) == pytest.approx(np.mean(accs), abs=1e-12)
    assert cv_probe(x, y, score_x=x) == cv_probe(x, y)


def test_probe_targets_cv_and_train_test_modes():
    x, y0 = clusters(150, 6, 3, 0.8, seed=8)
    y1 = (x[:, 0] > 0).astype(int)
    y = np.stack([y0, y1], 1)
    res = probe_targets(x, y, ["a", "b"])
    assert res["a"] == cv_probe(x, y0, stratify_on=y0)
    assert res["b"] == cv_probe(x, y1, stratify_on=y0)  # every target stratified on the first one
    assert res["mean"] == pytest.approx((res["a"] + res["b"]) / 2)

    xte, yte0 = clusters(90, 6, 3, 0.8, seed=9)
    yte = np.stack([yte0, (xte[:, 0] > 0).astype(int)], 1)
    res = probe_targets(x, y, ["a", "b"], test_x=xte, test_y=yte)
    assert res["a"] == linear_probe(x, y0, xte, yte0)
    assert res["b"] == linear_probe(x, y1, xte, yte[:, 1])
    with pytest.raises(ValueError, match="target names"):
        probe_targets(x, y, ["only_one"])


@pytest.mark.parametrize("classes", [2, 5])
def test_torch_probe_agrees_with_sklearn_within_half_a_point(classes):
    xtr, ytr = clusters(500, 16, classes, 0.35, seed=10)
    xte, yte = clusters(500, 16, classes, 0.35, seed=11)
    rng = np.random.default_rng(12)
    mix = rng.normal(size=(16, 10))
    train = {"raw": xtr, "narrow": xtr[:, :6] * 5 + 3, "mixed": np.tanh(xtr @ mix)}
    test = {"raw": xte, "narrow": xte[:, :6] * 5 + 3, "mixed": np.tanh(xte @ mix)}
    fast = torch_linear_probe(train, ytr, test, yte, device="cpu")
    assert set(fast) == set(train)
    for name in train:
        ref = linear_probe(train[name], ytr, test[name], yte)
        assert 0.2 < ref < 0.99  # a non-trivial problem, so agreement means something
        assert abs(fast[name] - ref) <= 0.005, (name, fast[name], ref)
    one_at_a_time = torch_linear_probe(train, ytr, test, yte, device="cpu", sets_per_batch=1)
    for name in train:
        assert abs(one_at_a_time[name] - fast[name]) <= 0.005
