"""Ringdown model, its JAX Jacobian, and Gauss–Newton fits recovering known parameters."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.jax_science import least_squares as ls

THETA = jnp.array([1.5, 0.3, 2 * np.pi * 1.2, 0.4])  # A, gamma, omega, phi
T = jnp.linspace(0.0, 8.0, 400)


def test_ringdown_values_and_analytic_jacobian():
    t = 0.7
    a, g, w, p = (float(v) for v in THETA)
    envelope, phase = np.exp(-g * t), w * t + p
    assert float(ls.ringdown(THETA, t)) == pytest.approx(a * envelope * np.cos(phase), rel=1e-6)
    jac = np.asarray(jax.jacfwd(ls.ringdown)(THETA, t))
    expected = [
        envelope * np.cos(phase),
        -t * a * envelope * np.cos(phase),
        -t * a * envelope * np.sin(phase),
        -a * envelope * np.sin(phase),
    ]
    np.testing.assert_allclose(jac, expected, rtol=1e-5, atol=1e-6)


def test_simulation_is_deterministic_with_the_right_noise_level():
    y1 = ls.simulate_ringdown(jr.key(0), THETA, T, 0.1)
    y2 = ls.simulate_ringdown(jr.key(0), THETA, T, 0.1)
    np.testing.assert_array_equal(np.asarray(y1), np.asarray(y2))
    noise = np.asarray(y1 - ls.ringdown(THETA, T))
    assert 0.09 < noise.std() < 0.11
    assert 0.5 * np.mean(noise**2) == pytest.approx(float(ls.misfit(ls.ringdown, THETA, T, y1)))


def test_gauss_newton_recovers_parameters_from_clean_data():
    y = ls.ringdown(THETA, T)
    start = THETA * jnp.array([0.7, 1.5, 1.03, 0.5])
    theta, history = ls.gauss_newton(ls.ringdown, start, T, y, n_iter=30)
    np.testing.assert_allclose(np.asarray(theta), np.asarray(THETA), rtol=1e-3)
    assert history.shape == (31,)
    assert history[-1] < 1e-8 * history[0]


def test_gauss_newton_with_noise_lands_within_the_noise():
    y = ls.simulate_ringdown(jr.key(3), THETA, T, 0.05)
    start = THETA * jnp.array([1.2, 0.8, 0.98, 1.3])
    theta, history = ls.gauss_newton(ls.ringdown, start, T, y)
    # the misfit at the fit is that of the noise itself (half the variance), not above it
    assert float(history[-1]) == pytest.approx(0.5 * 0.05**2, rel=0.15)
    assert float(history[-1]) <= float(ls.misfit(ls.ringdown, THETA, T, y)) + 1e-7
    np.testing.assert_allclose(np.asarray(theta), np.asarray(THETA), rtol=0.05, atol=0.02)


def test_step_reduces_misfit():
    y = ls.ringdown(THETA, T)
    start = THETA * jnp.array([0.9, 1.1, 1.01, 0.9])
    new = ls.gauss_newton_step(ls.ringdown, start, T, y)
    assert ls.misfit(ls.ringdown, new, T, y) < 0.1 * ls.misfit(ls.ringdown, start, T, y)


def test_bad_inputs_raise():
    y = ls.ringdown(THETA, T)
    with pytest.raises(ValueError, match="same length"):
        ls.gauss_newton(ls.ringdown, THETA, T, y[:-1])
    with pytest.raises(ValueError, match="n_iter must be a positive int"):
        ls.gauss_newton(ls.ringdown, THETA, T, y, n_iter=0)
    with pytest.raises(ValueError, match="1-D parameter vector"):
        ls.gauss_newton(ls.ringdown, THETA[None], T, y)
    with pytest.raises(ValueError, match="noise must be a non-negative"):
        ls.simulate_ringdown(jr.key(0), THETA, T, -1.0)
    with pytest.raises(ValueError, match="shape \\(4,\\)"):
        ls.simulate_ringdown(jr.key(0), THETA[:3], T, 0.1)
