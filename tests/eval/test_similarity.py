import numpy as np
import pytest
from scipy.stats import ortho_group

from blockmae.eval import cka_matrix, hsic, linear_cka, minibatch_cka, rbf_cka, rbf_gram


def rep(n=60, d=12, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def centred(x):
    return x - x.mean(0)


def kernel_cka(k, l):
    """Biased CKA from kernel matrices by the textbook formula tr(KHLH) / sqrt(tr(KHKH) tr(LHLH))."""
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    f = lambda a, b: np.trace(a @ h @ b @ h)
    return f(k, l) / np.sqrt(f(k, k) * f(l, l))


def song_hsic1(k, l):
    """Song et al. (2012) unbiased HSIC, written out term by term."""
    n = len(k)
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ kt @ lt @ one) / (n * (n - 3))


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_invariances(debiased):
    x = rep()
    q = ortho_group.rvs(12, random_state=1)
    assert linear_cka(x, x, debiased) == pytest.approx(1.0)
    assert linear_cka(x, x @ q, debiased) == pytest.approx(1.0)
    assert linear_cka(x, 3.7 * x + 2.0, debiased) == pytest.approx(1.0)  # isotropic scaling, translation


def test_rbf_cka_invariances():
    x = rep(50, 8)
    q = ortho_group.rvs(8, random_state=2)
    for debiased in (False, True):
        assert rbf_cka(x, x, debiased=debiased) == pytest.approx(1.0)
        # median bandwidth per representation makes RBF CKA invariant to rotation and isotropic scaling
        assert rbf_cka(x, 5.0 * x @ q, debiased=debiased) == pytest.approx(1.0)


def test_linear_cka_equals_feature_and_kernel_formulas():
    x = rep(40, 7, seed=3) + 1.5
    y = x @ np.random.default_rng(4).normal(size=(7, 5)) + rep(40, 5, seed=5)
    xc, yc = centred(x), centred(y)
    feature = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert linear_cka(x, y) == pytest.approx(feature, rel=1e-12)
    assert linear_cka(x, y) == pytest.approx(kernel_cka(x @ x.T, y @ y.T), rel=1e-10)
    assert 0.0 < linear_cka(x, y) < 1.0


def test_linear_cka_gram_route_for_wide_features():
    x, y = rep(10, 40, seed=6), rep(10, 30, seed=7)  # n < d: the Gram-matrix route
    assert linear_cka(x, y) == pytest.approx(kernel_cka(x @ x.T, y @ y.T), rel=1e-10)


def test_debiased_linear_cka_equals_song_hsic_on_raw_kernels():
    x = rep(30, 6, seed=8) + 4.0  # not centred: the unbiased estimator ignores the mean (up to rounding)
    y = np.tanh(x @ np.random.default_rng(9).normal(size=(6, 4)))
    k, l = x @ x.T, y @ y.T
    expected = song_hsic1(k, l) / np.sqrt(song_hsic1(k, k) * song_hsic1(l, l))
    assert linear_cka(x, y, debiased=True) == pytest.approx(expected, rel=1e-6)
    assert hsic(k, l, debiased=True) == pytest.approx(song_hsic1(k, l), rel=1e-9)
    xc = x - x.mean(0)
    assert hsic(xc @ xc.T, l, debiased=True) == pytest.approx(song_hsic1(k, l), rel=1e-6)


def test_debiased_linear_cka_equals_song_hsic_for_wide_features():
    """n < d (the Gram route, as for the analysis's layer matrices on small datasets), in `cka_matrix` too."""
    x, y = rep(12, 50, seed=17), rep(12, 30, seed=18)
    y[:, :10] += 2.0 * x[:, :10]
    k, l = x @ x.T, y @ y.T
    expected = song_hsic1(k, l) / np.sqrt(song_hsic1(k, k) * song_hsic1(l, l))
    assert linear_cka(x, y, debiased=True) == pytest.approx(expected, rel=1e-6)
    assert cka_matrix([x, y], debiased=True)[0, 1] == pytest.approx(expected, rel=1e-6)


def test_rbf_cka_equals_kernel_formula_with_median_bandwidth():
    x, y = rep(30, 5, seed=10), rep(30, 3, seed=11)
    y = np.concatenate([x[:, :2], y], 1)

    def gram(a, frac=1.0):
        d = np.sqrt(((a[:, None, :] - a[None, :, :]) ** 2).sum(-1))
        sigma = frac * np.median(d[np.triu_indices(len(a), 1)])
        return np.exp(-d ** 2 / (2 * sigma ** 2))

    np.testing.assert_allclose(rbf_gram(x), gram(x), atol=1e-12)
    assert rbf_cka(x, y) == pytest.approx(kernel_cka(gram(x), gram(y)), rel=1e-10)
    assert rbf_cka(x, y, sigma_frac=0.5) == pytest.approx(kernel_cka(gram(x, 0.5), gram(y, 0.5)), rel=1e-10)
    k, l = gram(x), gram(y)
    assert rbf_cka(x, y, debiased=True) == pytest.approx(
        song_hsic1(k, l) / np.sqrt(song_hsic1(k, k) * song_hsic1(l, l)), rel=1e-9)


def test_independent_features_near_zero_only_when_debiased():
    x, y = rep(40, 400, seed=12), rep(40, 400, seed=13)
    biased, unbiased = linear_cka(x, y), linear_cka(x, y, debiased=True)
    assert biased > 0.5  # the small-n, large-d bias of the plain estimator
    assert abs(unbiased) < 0.1


def test_minibatch_cka_close_to_full_debiased():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(1200, 10))
    y = np.tanh(x @ rng.normal(size=(10, 8))) + 0.5 * rng.normal(size=(1200, 8))
    full = linear_cka(x, y, debiased=True)
    mini = minibatch_cka(x, y, batch_size=200, seed=0)
    assert mini == pytest.approx(full, abs=0.02)
    pairs = [(x[i:i + 300], y[i:i + 300]) for i in range(0, 1200, 300)]
    assert minibatch_cka(pairs) == pytest.approx(full, abs=0.02)
    rbf_full, rbf_mini = rbf_cka(x[:400], y[:400], debiased=True), minibatch_cka(x[:400], y[:400], batch_size=100,
                                                                                kind="rbf")
    assert rbf_mini == pytest.approx(rbf_full, abs=0.05)


def test_cka_matrix_within_and_across_runs():
    base = rep(50, 6, seed=15)
    feats = [base, np.tanh(base), rep(50, 6, seed=16)]
    m = cka_matrix(feats)
    assert m.shape == (3, 3)
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(np.diag(m), 1.0)
    for i in range(3):
        for j in range(3):
            assert m[i, j] == pytest.approx(linear_cka(feats[i], feats[j]))
    cross = cka_matrix(feats[:2], feats, kind="rbf")
    assert cross.shape == (2, 3)
    assert cross[1, 2] == pytest.approx(rbf_cka(feats[1], feats[2]))
    deb = cka_matrix(feats, feats[:1], debiased=True)
    assert deb[2, 0] == pytest.approx(linear_cka(feats[2], feats[0], debiased=True))
    with pytest.raises(ValueError, match="same clips"):
        cka_matrix([base, base[:10]])
