"""`classify.PCA` (via an eigendecomposition) agrees with the singular value decomposition."""

import numpy as np
import pytest

from tutorial_lib.generative import PPCA, classify


@pytest.mark.parametrize("shape", [(40, 120), (120, 40), (60, 60)])
def test_pca_matches_svd_up_to_sign(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape) * np.linspace(3.0, 0.1, shape[1]) + 0.5
    k = 10
    pca = classify.PCA(x, k)
    _, s, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    np.testing.assert_allclose(pca.variances, s**2 / len(x), rtol=1e-8, atol=1e-12)
    signs = np.sign(np.sum(pca.components * vt[:k], axis=1))
    np.testing.assert_allclose(pca.components, signs[:, None] * vt[:k], atol=1e-8)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(k), atol=1e-10)
    # The sign convention: each direction's entry of largest magnitude is positive.
    big = np.argmax(np.abs(pca.components), axis=1)
    assert np.all(pca.components[np.arange(k), big] > 0)


def test_pca_of_rank_deficient_data_falls_back_to_svd():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3)) @ rng.normal(size=(3, 50))  # rank 3, centred rank <= 3
    pca = classify.PCA(x, 6)  # asks for directions with no variance
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(6), atol=1e-10)
    assert np.all(pca.variances[3:] < 1e-20 * pca.variances[0] + 1e-12)


def test_ppca_density_unchanged_by_the_faster_pca():
    rng = np.random.default_rng(2)
    train = rng.uniform(size=(30, 64)) ** 2
    test = rng.uniform(size=(5, 64))
    ppca = PPCA(train, 4)
    x = train - train.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    var, sigma2 = s[:4] ** 2 / 30, float((s[4:] ** 2).sum() / 30) / (64 - 4)
    cov = vt[:4].T @ np.diag(var - sigma2) @ vt[:4] + sigma2 * np.eye(64)
    from scipy import stats

    np.testing.assert_allclose(
        ppca.log_prob(test), stats.multivariate_normal(train.mean(0), cov).logpdf(test), rtol=1e-8
    )
