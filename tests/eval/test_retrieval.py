import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score
from sklearn.metrics.pairwise import cosine_similarity

from blockmae.eval import average_precision, gallery_retrieval, knn_classify, loo_retrieval, loo_retrieval_targets


def features(n, d, classes, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, d))
    return centers[y] * 0.8 + rng.normal(size=(n, d)), y


def brute_force_loo(x, y, ks):
    sims = cosine_similarity(x)
    n = len(x)
    aps, hits = [], {k: 0 for k in ks}
    for i in range(n):
        others = np.array([j for j in range(n) if j != i])
        rel = (y[others] == y[i]).astype(int)
        order = others[np.argsort(-sims[i, others], kind="stable")]
        for k in ks:
            hits[k] += int(np.any(y[order[:k]] == y[i]))
        if rel.sum():
            aps.append(average_precision_score(rel, sims[i, others]))
    return np.mean(aps), {k: hits[k] / n for k in ks}


def test_loo_retrieval_matches_sklearn_ap_and_brute_force_recall():
    x, y = features(120, 10, 6, seed=0)
    y[0] = 99  # a query with no other clip of its class: skipped in mAP, a miss in R@k
    expected_map, expected_r = brute_force_loo(x, y, (1, 5, 10))
    res = loo_retrieval(x, y, chunk_size=32)
    assert res["map"] == pytest.approx(expected_map, abs=1e-12)
    for k in (1, 5, 10):
        assert res[f"r@{k}"] == pytest.approx(expected_r[k])
    assert set(res) == {"map", "r@1", "r@5", "r@10"}


def test_loo_retrieval_does_not_depend_on_chunking_or_scale():
    x, y = features(90, 8, 5, seed=1)
    a = loo_retrieval(x, y, chunk_size=7)
    b = loo_retrieval(x * 3.5, y, chunk_size=1000)  # cosine: scale-free
    assert a == pytest.approx(b)


def test_loo_retrieval_targets_equals_one_call_per_target():
    x, y0 = features(70, 6, 4, seed=9)
    y = np.stack([y0, (x[:, 0] > 0).astype(int), np.arange(70)], 1)  # last column: every clip its own class
    res = loo_retrieval_targets(x, y, ["a", "b", "single"], chunk_size=16)
    for j, name in enumerate(["a", "b", "single"]):
        assert res[name] == pytest.approx(loo_retrieval(x, y[:, j]), nan_ok=True)
    assert np.isnan(res["single"]["map"])
    assert res["mean"]["map"] == pytest.approx((res["a"]["map"] + res["b"]["map"]) / 2)  # nan-aware, as the authors
    assert res["mean"]["r@5"] == pytest.approx(np.mean([res[n]["r@5"] for n in ("a", "b", "single")]))


def test_loo_retrieval_ties_match_sklearn():
    x = np.random.default_rng(10).integers(0, 2, size=(40, 3)).astype(float) + 0.0  # many identical rows
    x[x.sum(1) == 0] = 1.0
    y = np.random.default_rng(11).integers(0, 3, 40)
    expected_map, _ = brute_force_loo(x, y, (1,))
    assert loo_retrieval(x, y)["map"] == pytest.approx(expected_map, abs=1e-12)


def test_average_precision_handles_ties_like_sklearn():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, size=(40, 25)).astype(np.float64)  # many ties
    rel = rng.random((40, 25)) < 0.3
    rel[:, 0] = True
    ap = average_precision(torch.tensor(scores), torch.tensor(rel)).numpy()
    expected = [average_precision_score(rel[i], scores[i]) for i in range(40)]
    np.testing.assert_allclose(ap, expected, atol=1e-12)
    none = average_precision(torch.tensor(scores[:1]), torch.zeros(1, 25, dtype=torch.bool))
    assert torch.isnan(none).all()


def test_loo_retrieval_all_singletons_gives_nan_map():
    x = np.random.default_rng(3).normal(size=(6, 4))
    res = loo_retrieval(x, np.arange(6))
    assert np.isnan(res["map"]) and res["r@1"] == 0.0


def test_gallery_retrieval_brute_force():
    xq, yq = features(40, 8, 5, seed=4)
    xg, yg = features(70, 8, 5, seed=4)  # same centres (same seed), other draws below
    xg = xg + np.random.default_rng(5).normal(size=xg.shape) * 0.3
    ks = (1, 5, 10, 20, 50)
    sims = cosine_similarity(xq, xg)
    expected = {}
    for k in ks:
        hits = [np.any(yg[np.argsort(-sims[i], kind="stable")[:k]] == yq[i]) for i in range(len(xq))]
        expected[f"r@{k}"] = np.mean(hits)
    res = gallery_retrieval(xq, yq, xg, yg, ks=ks, chunk_size=16)
    assert res == pytest.approx(expected)
    assert res["r@50"] >= res["r@1"]


def test_knn_classify_matches_a_direct_weighted_vote():
    xtr, ytr = features(80, 6, 4, seed=6)
    xte, yte = features(30, 6, 4, seed=6)
    xte = xte + np.random.default_rng(7).normal(size=xte.shape)
    k, temp = 7, 0.07
    sims = cosine_similarity(xte, xtr)
    correct = 0
    for i in range(len(xte)):
        nn = np.argsort(-sims[i], kind="stable")[:k]
        votes = np.zeros(4)
        for j in nn:
            votes[ytr[j]] += np.exp(sims[i, j] / temp)
        correct += int(np.argmax(votes) == yte[i])
    assert knn_classify(xtr, ytr, xte, yte, k=k, temperature=temp, chunk_size=8) == pytest.approx(correct / len(xte))


def test_knn_perfect_on_separated_clusters():
    rng = np.random.default_rng(8)
    centers = np.eye(3) * 10
    ytr, yte = rng.integers(0, 3, 60), rng.integers(0, 3, 20)
    xtr = centers[ytr] + rng.normal(size=(60, 3)) * 0.1
    xte = centers[yte] + rng.normal(size=(20, 3)) * 0.1
    assert knn_classify(xtr, ytr, xte, yte, k=20) == 1.0


def test_gallery_recall_is_not_reported_for_k_beyond_the_gallery():
    xq, yq = features(10, 8, 3, seed=1)
    xg, yg = features(12, 8, 3, seed=2)
    assert set(gallery_retrieval(xq, yq, xg, yg)) == {"r@1", "r@5", "r@10"}  # no R@20/50 from 12 clips


def test_loo_retrieval_with_groups_leaves_the_query_group_out():
    rng = np.random.default_rng(0)
    base, labels = rng.normal(size=(12, 8)), rng.integers(0, 3, 12)
    x = np.repeat(base, 2, axis=0) + 1e-3 * rng.normal(size=(24, 8))  # near twins, one pair per group
    y, groups = np.repeat(labels, 2), np.repeat(np.arange(12), 2)
    assert loo_retrieval_targets(x, y)["mean"]["r@1"] == 1.0  # every twin is its query's nearest hit
    grouped = loo_retrieval_targets(x, y, groups=groups)["mean"]
    # by hand: each query ranks only the clips outside its group
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = z @ z.T
    sims[groups[:, None] == groups[None, :]] = -np.inf
    nearest = sims.argmax(1)
    assert grouped["r@1"] == pytest.approx(np.mean(y[nearest] == y))
    singletons = loo_retrieval_targets(x, y, groups=np.arange(24))["mean"]
    assert singletons == pytest.approx(loo_retrieval_targets(x, y)["mean"])  # groups of one: plain leave-one-out
