import numpy as np
import pytest

from blockmae.eval import (condition_number, covariance_spectrum, effective_rank, explained_variance_k,
                           geometry_metrics, isotropy_ratio, participation_ratio, sample_pairs, twonn_dimension,
                           two_nearest_distances, uniformity)


def fixed(n=80, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * np.array([3.0, 2.0, 1.0, 0.5, 0.3, 0.1]) + 1.0


def test_spectrum_is_the_sample_covariance_eigenvalues():
    x = fixed()
    np.testing.assert_allclose(covariance_spectrum(x), np.sort(np.linalg.eigvalsh(np.cov(x.T)))[::-1], rtol=1e-10)


def test_spectral_metrics_against_direct_formulas():
    x = fixed()
    lam = np.linalg.eigvalsh(np.cov(x.T))
    p = lam / lam.sum()
    m = geometry_metrics(x)
    assert m["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert m["participation_ratio"] == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum())
    assert m["isotropy_ratio"] == pytest.approx(lam.max() / lam.mean())
    assert m["condition_number"] == pytest.approx(lam.max() / lam.min())
    share = np.cumsum(np.sort(lam)[::-1]) / lam.sum()
    assert m["explained_variance_k90"] == next(k + 1 for k, s in enumerate(share) if s >= 0.9)


def test_known_cases():
    rng = np.random.default_rng(1)
    iso = rng.normal(size=(20000, 8))
    lam = covariance_spectrum(iso)
    assert effective_rank(lam) == pytest.approx(8, rel=0.01)
    assert participation_ratio(lam) == pytest.approx(8, rel=0.02)
    assert isotropy_ratio(lam) == pytest.approx(1, abs=0.05)
    rank1 = rng.normal(size=(50, 1)) * rng.normal(size=(1, 8))
    lam1 = covariance_spectrum(rank1)
    assert participation_ratio(lam1) == pytest.approx(1.0)
    assert effective_rank(lam1) == pytest.approx(1.0, abs=1e-6)
    assert explained_variance_k(lam1) == 1
    assert explained_variance_k([4.0, 3.0, 2.0, 1.0], 0.7) == 2  # 7 of 10 reached exactly at k=2
    assert condition_number([2.0, 0.5]) == 4.0


def test_pairwise_statistics_over_all_pairs():
    x = fixed(12, 6, seed=2)
    m = geometry_metrics(x)
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos, dist, kern = [], [], []
    for i in range(12):
        for j in range(12):
            if i != j:
                cos.append(z[i] @ z[j])
                dist.append(np.linalg.norm(x[i] - x[j]))
                kern.append(np.exp(-2 * np.sum((z[i] - z[j]) ** 2)))
    norms = np.linalg.norm(x, axis=1)
    assert m["norm_mean"] == pytest.approx(norms.mean()) and m["norm_std"] == pytest.approx(norms.std())
    assert m["cosine_mean"] == pytest.approx(np.mean(cos)) and m["cosine_std"] == pytest.approx(np.std(cos))
    assert m["distance_mean"] == pytest.approx(np.mean(dist)) and m["distance_std"] == pytest.approx(np.std(dist))
    assert m["uniformity"] == pytest.approx(np.log(np.mean(kern)))


def test_sampled_pairs_path():
    x = fixed(300, 6, seed=3)
    i, j = sample_pairs(300, 5000, seed=4)
    assert len(i) == 5000 and np.all(i != j)
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected = np.log(np.mean(np.exp(-2 * np.sum((z[i] - z[j]) ** 2, axis=1))))
    assert uniformity(x, max_pairs=5000, seed=4) == pytest.approx(expected)
    m = geometry_metrics(x, max_pairs=5000, seed=4)
    assert m["cosine_mean"] == pytest.approx(np.mean(np.sum(z[i] * z[j], axis=1)))
    assert m == geometry_metrics(x, max_pairs=5000, seed=4)  # seeded


def test_uniformity_bounds():
    same = np.ones((10, 4))
    assert uniformity(same) == pytest.approx(0.0)  # all points coincide: the maximum
    rng = np.random.default_rng(5)
    spread = uniformity(rng.normal(size=(100, 16)))
    assert -4.0 <= spread < 0.0  # squared distances on the sphere are at most 4


def brute_force_twonn(x):
    """Facco et al.'s maximum-likelihood TwoNN, written out: every pairwise distance, then (N - 1) / sum log mu."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    r = np.sort(d, axis=1)[:, :2]
    keep = r[:, 0] > 0
    return (keep.sum() - 1) / np.sum(np.log(r[keep, 1] / r[keep, 0]))


def test_twonn_equals_brute_force():
    x = fixed(120, 6, seed=6) + 50.0  # far from the origin: the Gram route must not lose the small distances
    assert twonn_dimension(x) == pytest.approx(brute_force_twonn(x), rel=1e-9)
    r1, r2 = two_nearest_distances(x)
    assert np.all(r1 <= r2) and np.all(r1 > 0)


def test_twonn_leaves_duplicates_out_and_blocks_agree(monkeypatch):
    import blockmae.eval.geometry as geometry

    x = fixed(60, 6, seed=7)
    x = np.concatenate([x, x[:5]])  # five duplicated clips: r1 = 0 for ten points
    assert twonn_dimension(x) == pytest.approx(brute_force_twonn(x), rel=1e-9)
    monkeypatch.setattr(geometry, "ROW_BLOCK", 7)
    assert twonn_dimension(x) == pytest.approx(brute_force_twonn(x), rel=1e-9)
    assert np.isnan(twonn_dimension(np.ones((10, 3))))


def test_twonn_finds_known_dimensions():
    rng = np.random.default_rng(8)
    plane = rng.uniform(size=(1500, 2)) @ ortho_rows(2, 50, rng)  # a 2-D square inside 50-D
    assert twonn_dimension(plane) == pytest.approx(2.0, abs=0.25)
    gauss = rng.normal(size=(2000, 5)) @ ortho_rows(5, 30, rng)
    assert twonn_dimension(gauss) == pytest.approx(5.0, abs=0.6)
    segment = rng.uniform(size=(1000, 1)) @ ortho_rows(1, 8, rng)
    assert twonn_dimension(segment) == pytest.approx(1.0, abs=0.15)


def ortho_rows(k, d, rng):
    """k orthonormal rows in d dimensions: embeds k-D data isometrically."""
    q, _ = np.linalg.qr(rng.normal(size=(d, k)))
    return q.T
