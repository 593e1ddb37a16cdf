"""Mutual k-nearest-neighbour alignment against a brute-force formula and cases with known answers."""

import numpy as np
import pytest
from scipy.stats import ortho_group

import blockmae.eval.neighbours as neighbours
from blockmae.eval import knn_indices, mutual_knn


def rep(n=80, d=10, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def brute_force_mutual_knn(x, y, k):
    """Huh et al.'s definition written out: per clip, the k most cosine-similar other clips in X and in Y."""
    def neighbours_of(a):
        z = a / np.linalg.norm(a, axis=1, keepdims=True)
        sim = z @ z.T
        out = []
        for i in range(len(a)):
            order = [j for j in np.argsort(-sim[i], kind="stable") if j != i]
            out.append(set(order[:k]))
        return out

    nx, ny = neighbours_of(x), neighbours_of(y)
    return float(np.mean([len(nx[i] & ny[i]) / k for i in range(len(x))]))


@pytest.mark.parametrize("k", [1, 5, 10])
def test_mutual_knn_equals_brute_force(k):
    x = rep(seed=1)
    y = np.tanh(x @ np.random.default_rng(2).normal(size=(10, 7))) + 0.3 * rep(80, 7, seed=3)
    assert mutual_knn(x, y, k) == pytest.approx(brute_force_mutual_knn(x, y, k), abs=1e-12)


def test_row_blocks_do_not_change_the_neighbours(monkeypatch):
    x = rep(50, 6, seed=4)
    whole = np.sort(knn_indices(x, 7), axis=1)
    monkeypatch.setattr(neighbours, "ROW_BLOCK", 8)  # seven blocks, the last one short
    np.testing.assert_array_equal(np.sort(knn_indices(x, 7), axis=1), whole)


def test_identical_rotated_and_scaled_features_align_fully():
    x = rep(seed=5)
    q = ortho_group.rvs(10, random_state=6)
    assert mutual_knn(x, x, 10) == 1.0
    assert mutual_knn(x, 3.0 * x @ q, 10) == pytest.approx(1.0)  # cosine neighbours survive rotation and scale


def test_scrambled_rows_align_at_chance():
    """Y = X with its rows permuted: Y's neighbours of clip i are unrelated to X's, so the expected overlap is
    that of two random k-subsets of the other n - 1 clips, k / (n - 1)."""
    n, k = 400, 10
    x = rep(n, 8, seed=7)
    scores = [mutual_knn(x, x[np.random.default_rng(s).permutation(n)], k) for s in range(5)]
    chance = k / (n - 1)
    assert np.mean(scores) == pytest.approx(chance, abs=0.01)
    assert max(scores) < 0.1


def test_bad_inputs_are_refused():
    x = rep(12, 4)
    with pytest.raises(ValueError, match="same clips"):
        mutual_knn(x, x[:10])
    with pytest.raises(ValueError, match="k must be"):
        mutual_knn(x, x, k=12)
