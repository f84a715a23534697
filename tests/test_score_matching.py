"""Denoising score matching: the Swiss roll data, exact noisy scores, the loss and the trainer."""

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.data import toy
from tutorial_lib.diffusion import annealed_langevin
from tutorial_lib.diffusion import score_matching as sm

MU = jnp.array([1.0, -0.5])
S = 1.5  # data N(MU, S^2 I); its noisy score at level sigma is (MU - x) / (S^2 + sigma^2)


def gaussian_noisy_score(x, sigma):
    return (MU - x) / (S**2 + sigma**2)


# --- data --------------------------------------------------------------------------------------


def test_swiss_roll_is_normalised():
    x = sm.swiss_roll(jr.key(0), 400_000, noise=0.0)
    assert x.shape == (400_000, 2) and x.dtype == jnp.float32
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.01)
    # Unit variance averaged over the coordinates (the same scale for both).
    np.testing.assert_allclose(float(x.var(axis=0).mean()), 1.0, atol=0.01)
    # Noise of standard deviation 0.3 adds 0.09 to the variance.
    noisy = sm.swiss_roll(jr.key(0), 400_000, noise=0.3)
    np.testing.assert_allclose(float(noisy.var(axis=0).mean()), 1.09, atol=0.01)
    # The dense curve is the noise-free roll: exactly centred and of unit variance.
    curve = sm.swiss_roll_curve(20_000)
    np.testing.assert_allclose(curve.mean(axis=0), 0.0, atol=1e-3)
    np.testing.assert_allclose(float(curve.var(axis=0).mean()), 1.0, atol=1e-3)
    # Noise-free samples lie on the curve; the same key gives the same points.
    d = sm.nearest_distance(sm.swiss_roll(jr.key(1), 500, noise=0.0), curve)
    assert float(d.max()) < 0.01
    np.testing.assert_array_equal(sm.swiss_roll(jr.key(2), 10), sm.swiss_roll(jr.key(2), 10))


def test_swiss_roll_has_one_owner():
    # The chapter's roll is the data package's: the same functions, not a copy.
    assert sm.swiss_roll is toy.swiss_roll and sm.swiss_roll_curve is toy.swiss_roll_curve
    assert sm.swiss_roll.__module__ == "tutorial_lib.data.toy"


def test_swiss_roll_noise_is_the_distance_to_the_curve():
    # Gaussian noise of std 0.05 across the arms: the mean distance to the curve is about
    # 0.05 * sqrt(pi/2) (the 2-D noise projected on the normal is a 1-D Gaussian).
    x = sm.swiss_roll(jr.key(3), 4_000, noise=0.05)
    d = sm.nearest_distance(x, sm.swiss_roll_curve(20_000))
    np.testing.assert_allclose(float(d.mean()), 0.05 * np.sqrt(2 / np.pi), rtol=0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be a positive int"),
        ({"n": 2.5}, "n must be a positive int"),
        ({"n": True}, "n must be a positive int"),
        ({"n": 10, "noise": -0.1}, "noise must be a standard deviation >= 0"),
        ({"n": 10, "noise": float("nan")}, "noise must be a standard deviation >= 0"),
    ],
)
def test_swiss_roll_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sm.swiss_roll(jr.key(0), **kwargs)


# --- exact noisy scores ------------------------------------------------------------------------


def test_empirical_noised_score_is_the_gradient_of_the_log_density():
    data = jr.normal(jr.key(0), (50, 2))

    def log_density(x, sigma):
        sq = jnp.sum((data - x) ** 2, axis=1)
        return jax.nn.logsumexp(-0.5 * sq / sigma**2) - jnp.log(2 * jnp.pi * sigma**2)

    points = 2 * jr.normal(jr.key(1), (20, 2))
    for sigma in [0.1, 0.5, 3.0]:
        got = jax.vmap(sm.empirical_noised_score, in_axes=(None, 0, None))(data, points, sigma)
        want = jax.vmap(jax.grad(log_density), in_axes=(0, None))(points, sigma)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 / sigma**2)


def test_swiss_roll_score_blurs_by_both_noises():
    curve = sm.swiss_roll_curve(2_000)
    x = jnp.array([0.3, -0.7])
    got = sm.swiss_roll_score(x, 0.2, noise=0.05, curve=curve)
    want = sm.empirical_noised_score(curve, x, np.sqrt(0.05**2 + 0.2**2))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # At a large noise level the roll looks like one Gaussian of variance 1 + noise^2 +
    # sigma^2 (mean 0, isotropic on average): the score is close to -x / (1 + sigma^2).
    sigma = 20.0
    far = jnp.array([1.0, 2.0])
    np.testing.assert_allclose(
        sm.swiss_roll_score(far, sigma, curve=curve), -far / (1 + 0.05**2 + sigma**2), rtol=0.05
    )


# --- the loss ----------------------------------------------------------------------------------


def test_dsm_loss_single_by_hand():
    x, z, sigma = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0]), 0.5
    noisy = x + sigma * z
    want = 0.5 * np.sum((sigma * np.asarray(gaussian_noisy_score(noisy, sigma)) + z) ** 2)
    got = sm.dsm_loss_single(gaussian_noisy_score, x, sigma, z)
    np.testing.assert_allclose(float(got), want, rtol=1e-6)


def test_dsm_loss_floor_and_minimiser_for_gaussian_data():
    # For Gaussian data the exact noisy score leaves the loss d/2 * S^2 / (S^2 + sigma^2), and
    # it is the minimiser: among the scaled scores c * s, the loss is smallest at c = 1.
    sigma = 0.8
    x = MU + S * jr.normal(jr.key(0), (200_000, 2))
    floor = S**2 / (S**2 + sigma**2)
    loss = sm.dsm_loss(gaussian_noisy_score, x, jr.key(1), jnp.array([sigma]))
    np.testing.assert_allclose(float(loss), floor, rtol=0.01)

    cs = jnp.linspace(0.8, 1.2, 41)
    losses = jnp.array(
        [
            sm.dsm_loss(lambda y, s, c=c: c * gaussian_noisy_score(y, s), x, jr.key(1), [sigma])
            for c in cs
        ]
    )
    assert abs(float(cs[jnp.argmin(losses)]) - 1.0) < 0.025


def test_dsm_loss_draws_every_level():
    # With two levels, the loss of the exact score is the average of the two floors.
    x = MU + S * jr.normal(jr.key(2), (200_000, 2))
    sigmas = jnp.array([2.0, 0.2])
    want = np.mean([S**2 / (S**2 + s**2) for s in [2.0, 0.2]])
    got = sm.dsm_loss(gaussian_noisy_score, x, jr.key(3), sigmas)
    np.testing.assert_allclose(float(got), want, rtol=0.01)


@pytest.mark.parametrize(
    ("x", "sigmas", "match"),
    [
        (jnp.zeros(4), [1.0], "must be a 2-D array of shape"),
        (jnp.zeros((4, 2)), [[1.0]], "sigmas must be a non-empty 1-D array"),
        (jnp.zeros((4, 2)), jnp.zeros((0,)), "sigmas must be a non-empty 1-D array"),
        (jnp.zeros((4, 2)), [1.0, -0.1], "sigmas must all be positive and finite"),
        (jnp.zeros((4, 2)), [1.0, float("inf")], "sigmas must all be positive and finite"),
    ],
)
def test_dsm_loss_rejects_bad_inputs(x, sigmas, match):
    with pytest.raises(ValueError, match=match):
        sm.dsm_loss(gaussian_noisy_score, x, jr.key(0), sigmas)


# --- model and training ------------------------------------------------------------------------


def test_noise_conditional_score_shape_and_scaling():
    model = sm.NoiseConditionalScore(dim=3, width=16, depth=2, key=jr.key(0))
    x = jnp.array([0.1, 0.2, 0.3])
    out = model(x, 0.5)
    assert out.shape == (3,) and out.dtype == jnp.float32
    # The output is f(x / sqrt(1 + sigma^2), log sigma) / sigma.
    h = jnp.concatenate([x / jnp.sqrt(1.25), jnp.log(jnp.array([0.5]))])
    np.testing.assert_allclose(out, model.mlp(h) / 0.5, rtol=1e-6)


def test_training_learns_the_noisy_score_of_a_gaussian():
    # DSM's minimiser is the noisy score: a small network trained on Gaussian data recovers
    # (MU - x) / (S^2 + sigma^2) at typical noisy points of every level, to a few per cent at
    # the large levels. At the smallest level the unpredictable noise dominates the loss (its
    # floor is ~1 while a 10 % score error adds ~sigma^2 |s|^2 / 200), so SGD resolves the
    # score less well there. An untrained network is off by about 100 %.
    data = MU + S * jr.normal(jr.key(0), (20_000, 2))
    sigmas = jnp.array([3.0, 1.0, 0.3])
    model = sm.NoiseConditionalScore(dim=2, width=32, depth=2, key=jr.key(1))
    loss_fn = functools.partial(sm.dsm_loss, sigmas=sigmas)
    model, losses = sm.train(loss_fn, model, data, jr.key(2), steps=1_500, batch_size=256)
    assert losses.shape == (1_500,) and np.all(np.isfinite(losses))
    assert losses[-200:].mean() < losses[:50].mean()
    clean = MU + S * jr.normal(jr.key(3), (2_000, 2))
    for i, (sigma, tolerance) in enumerate(zip(sigmas, [0.05, 0.05, 0.2], strict=True)):
        noisy = clean + sigma * jr.normal(jr.key(4 + i), clean.shape)
        learned = jax.vmap(model, in_axes=(0, None))(noisy, sigma)
        exact = jax.vmap(gaussian_noisy_score, in_axes=(0, None))(noisy, sigma)
        error = float(jnp.sqrt(jnp.sum((learned - exact) ** 2) / jnp.sum(exact**2)))
        assert error < tolerance, f"relative error {error:.3f} at sigma = {float(sigma)}"
    # Annealed Langevin with the learned score draws from the last noisy law,
    # N(MU, (S^2 + sigma_L^2) I).
    x = annealed_langevin(
        model, 3.0 * jr.normal(jr.key(9), (2_000, 2)), jr.key(10), sigmas, 0.05, 200
    )
    np.testing.assert_allclose(x.mean(axis=0), MU, atol=0.15)
    np.testing.assert_allclose(x.std(axis=0), np.sqrt(S**2 + 0.3**2), rtol=0.08)


def test_train_is_deterministic_and_handles_partial_chunks():
    data = jr.normal(jr.key(0), (100, 2))

    def loss_fn(model, batch, key):
        return sm.dsm_loss(model, batch, key, jnp.array([1.0, 0.5]))

    model = sm.NoiseConditionalScore(width=8, depth=1, key=jr.key(1))
    a, losses_a = sm.train(loss_fn, model, data, jr.key(2), steps=25, batch_size=16, chunk=10)
    b, losses_b = sm.train(loss_fn, model, data, jr.key(2), steps=25, batch_size=16, chunk=10)
    assert losses_a.shape == (25,)
    np.testing.assert_array_equal(losses_a, losses_b)
    np.testing.assert_array_equal(a(jnp.ones(2), 0.5), b(jnp.ones(2), 0.5))
    # The chunking is invisible: one chunk of 25 steps gives the same losses.
    _, losses_c = sm.train(loss_fn, model, data, jr.key(2), steps=25, batch_size=16, chunk=25)
    np.testing.assert_allclose(losses_a, losses_c, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps must be a positive int"),
        ({"steps": 10, "batch_size": 0}, "batch_size must be a positive int"),
        ({"steps": 10, "chunk": 1.5}, "chunk must be a positive int"),
    ],
)
def test_train_rejects_bad_arguments(kwargs, match):
    model = sm.NoiseConditionalScore(width=8, depth=1, key=jr.key(0))
    with pytest.raises(ValueError, match=match):
        sm.train(lambda m, b, k: 0.0, model, jnp.zeros((10, 2)), jr.key(0), **kwargs)
    with pytest.raises(ValueError, match="must be a 2-D array"):
        sm.train(lambda m, b, k: 0.0, model, jnp.zeros(10), jr.key(0), steps=1)


def test_nearest_distance_matches_brute_force():
    samples = np.asarray(jr.normal(jr.key(0), (300, 2)))
    data = np.asarray(jr.normal(jr.key(1), (700, 2)))
    want = np.linalg.norm(samples[:, None] - data[None], axis=-1).min(axis=1)
    np.testing.assert_allclose(sm.nearest_distance(samples, data), want, rtol=1e-5, atol=1e-5)
