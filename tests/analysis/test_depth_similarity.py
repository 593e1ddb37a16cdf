"""The similarity rows of one run: plain CKA as before, the debiased, mutual-kNN and TwoNN rows beside it, each
equal to its `blockmae.eval` function on the clips the suite says it uses."""

import numpy as np
import pytest

import blockmae.analysis.depth_similarity as depth
from blockmae.analysis.depth_similarity import cka_entries, neighbour_entries
from blockmae.eval import cka_matrix, linear_cka, mutual_knn, rbf_cka, twonn_dimension


@pytest.fixture
def features(monkeypatch):
    """Four layers of 60 clips, two blocks (layers 2 and 4); the O(n^2) metrics limited to 40 clips."""
    monkeypatch.setattr(depth, "MAX_CLIPS", 40)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 16))
    layers = [x]
    for _ in range(3):
        layers.append(np.tanh(layers[-1] @ rng.normal(size=(16, 16)) / 4) + 0.2 * rng.normal(size=(60, 16)))
    return layers[1::2], layers, np.random.default_rng(0).permutation(60)[:40]


def by_metric(entries):
    out = {}
    for metric, value, where in entries:
        out.setdefault(metric, {})[tuple(sorted(where.items()))] = value
    return out


def test_cka_rows_plain_as_before_and_debiased_beside_them(features):
    blocks, layers, sub = features
    rows = by_metric(cka_entries(blocks, layers))
    pair = (("block", 1), ("block2", 2))
    a, b = blocks
    assert rows["cka_linear"][pair] == linear_cka(a, b)
    assert rows["cka_rbf"][pair] == rbf_cka(a[sub], b[sub])
    assert rows["cka_linear_debiased"][pair] == linear_cka(a, b, debiased=True)
    assert rows["cka_rbf_debiased"][pair] == rbf_cka(a[sub], b[sub], debiased=True)
    plain, unbiased = cka_matrix(layers), cka_matrix(layers, debiased=True)
    for i in range(4):
        for j in range(4):
            key = (("layer", i + 1), ("layer2", j + 1))
            assert rows["cka_linear"][key] == plain[i, j]
            assert rows["cka_linear_debiased"][key] == unbiased[i, j]
    assert len(rows["cka_linear"]) == 1 + 16 and len(rows["cka_rbf_debiased"]) == 1
    assert rows["cka_linear_debiased"][pair] < rows["cka_linear"][pair]  # the bias inflates plain CKA


def test_without_layers_only_block_rows():
    rng = np.random.default_rng(1)
    blocks = [rng.normal(size=(30, 8)) for _ in range(3)]
    entries = list(cka_entries(blocks)) + list(neighbour_entries(blocks))
    assert all("layer" not in where for _, _, where in entries)
    assert {m for m, _, _ in entries} == {"cka_linear", "cka_rbf", "cka_linear_debiased", "cka_rbf_debiased",
                                          "mutual_knn", "twonn_id"}
    tiny = [b[:3] for b in blocks]  # too few clips for the debiased estimator and for 10 neighbours
    assert {m for m, _, _ in list(cka_entries(tiny)) + list(neighbour_entries(tiny))} == {"cka_linear", "cka_rbf",
                                                                                          "twonn_id"}


def test_neighbour_rows(features):
    blocks, layers, sub = features
    rows = by_metric(neighbour_entries(blocks, layers))
    assert rows["mutual_knn"][(("block", 1), ("block2", 2))] == pytest.approx(mutual_knn(blocks[0][sub],
                                                                                         blocks[1][sub], 10))
    for i in range(3):
        assert rows["mutual_knn"][(("layer", i + 1), ("layer2", i + 2))] == pytest.approx(
            mutual_knn(layers[i][sub], layers[i + 1][sub], 10))
    for i in range(4):
        assert rows["twonn_id"][(("layer", i + 1),)] == twonn_dimension(layers[i][sub])
    assert rows["twonn_id"][(("block", 2),)] == rows["twonn_id"][(("layer", 4),)]
    assert len(rows["mutual_knn"]) == 1 + 3 and len(rows["twonn_id"]) == 2 + 4
