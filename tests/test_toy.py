"""Toy 2-D data sets and the Gaussian mixture's exact log-density and score."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.stats

from tutorial_lib.data import GaussianMixture, example_mixture, ring_mixture, swiss_roll, two_moons


@pytest.mark.parametrize("sampler", [swiss_roll, two_moons])
def test_toy_samplers_are_seeded_and_shaped(sampler):
    x = sampler(jr.key(0), 1_000)
    assert x.shape == (1_000, 2) and x.dtype == jnp.float32
    np.testing.assert_array_equal(x, sampler(jr.key(0), 1_000))
    assert not np.array_equal(x, sampler(jr.key(1), 1_000))
    assert 0.3 < float(jnp.std(x)) < 2.0
    assert float(jnp.abs(jnp.mean(x, axis=0)).max()) < 0.5


def test_two_moons_are_two_half_circles():
    x = two_moons(jr.key(0), 400, noise=0.0) + jnp.array([0.5, 0.25])
    upper, lower = x[:200], x[200:]
    np.testing.assert_allclose(jnp.linalg.norm(upper, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        jnp.linalg.norm(lower - jnp.array([1.0, 0.5]), axis=1), 1.0, atol=1e-5
    )


def _scipy_log_prob(gmm, x):
    dens = sum(
        float(w) * scipy.stats.multivariate_normal(np.asarray(m), np.asarray(c)).pdf(x)
        for w, m, c in zip(gmm.weights, gmm.means, gmm.covariances, strict=True)
    )
    return np.log(dens)


@pytest.mark.parametrize("gmm", [example_mixture(), ring_mixture()])
def test_log_prob_matches_scipy(gmm):
    points = np.asarray(jr.normal(jr.key(3), (20, 2)) * 3.0)
    ours = jax.jit(jax.vmap(gmm.log_prob))(points)
    np.testing.assert_allclose(ours, _scipy_log_prob(gmm, points), rtol=1e-4, atol=1e-4)


def test_density_integrates_to_one():
    gmm = example_mixture()
    grid = jnp.linspace(-9.0, 9.0, 301)
    xx, yy = jnp.meshgrid(grid, grid)
    pts = jnp.stack([xx.ravel(), yy.ravel()], axis=-1)
    dens = jnp.exp(jax.jit(jax.vmap(gmm.log_prob))(pts))
    assert float(dens.sum() * (grid[1] - grid[0]) ** 2) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("gmm", [example_mixture(), ring_mixture(), example_mixture().noised(0.7)])
def test_score_is_the_gradient_of_log_prob(gmm):
    points = jr.normal(jr.key(4), (50, 2)) * 3.0
    exact = jax.jit(jax.vmap(gmm.score))(points)
    autodiff = jax.jit(jax.vmap(jax.grad(gmm.log_prob)))(points)
    assert exact.shape == (50, 2)
    np.testing.assert_allclose(exact, autodiff, rtol=1e-4, atol=1e-4)


def test_score_and_log_prob_take_one_point_and_work_in_three_dimensions():
    gmm = GaussianMixture.isotropic([1.0, 3.0], [[0.0, 0.0, 0.0], [2.0, 0.0, -1.0]], [0.5, 1.0])
    x = jnp.array([0.3, -0.2, 0.1])
    log_prob, score, grad = jax.jit(
        lambda x: (gmm.log_prob(x), gmm.score(x), jax.grad(gmm.log_prob)(x))
    )(x)
    assert log_prob.shape == () and score.shape == (3,)
    np.testing.assert_allclose(gmm.weights, [0.25, 0.75])
    np.testing.assert_allclose(score, grad, rtol=1e-5)


def test_samples_match_the_moments():
    gmm = example_mixture()
    x = jax.jit(lambda key: gmm.sample(key, 200_000))(jr.key(5))
    mean = gmm.weights @ gmm.means
    second = jnp.einsum(
        "k,kij->ij", gmm.weights, gmm.covariances + jnp.einsum("ki,kj->kij", gmm.means, gmm.means)
    )
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.02)
    np.testing.assert_allclose(jnp.cov(x.T), second - jnp.outer(mean, mean), atol=0.05)


def test_noised_mixture_is_the_law_of_noisy_samples():
    gmm, sigma = ring_mixture(4, radius=3.0, std=0.3), 0.8
    noised = gmm.noised(sigma)
    np.testing.assert_allclose(noised.covariances[0], (0.3**2 + sigma**2) * jnp.eye(2), rtol=1e-6)
    k1, k2, k3 = jr.split(jr.key(6), 3)
    # Separate small jits: one fused jit of all of this deadlocks XLA:CPU in jaxlib 0.10.2.
    noisy = jax.jit(lambda k1, k2: gmm.sample(k1, 50_000) + sigma * jr.normal(k2, (50_000, 2)))(
        k1, k2
    )
    direct = jax.jit(lambda k: noised.sample(k, 50_000))(k3)
    np.testing.assert_allclose(jnp.cov(noisy.T), jnp.cov(direct.T), atol=0.08)
    gain = jax.jit(lambda x: jax.vmap(noised.log_prob)(x).mean() - jax.vmap(gmm.log_prob)(x).mean())
    assert float(gain(noisy)) > 0  # noisy samples are likelier under the noised law


def test_mixture_is_a_pytree_usable_under_jit_with_traced_sigma():
    @jax.jit
    def noisy_score(sigma, x):
        return example_mixture().noised(sigma).score(x)

    assert noisy_score(0.5, jnp.zeros(2)).shape == (2,)
