"""Tests for tutorial_lib.jax_science.pytrees: tree-mapped SGD and the damped-oscillator fit."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.jax_science import pytrees

TRUE = pytrees.DampedOscillator(1.5, 0.3, 2.0, 0.5)


@pytest.fixture(scope="module")
def data():
    t = jnp.linspace(0.0, 10.0, 400)
    return t, pytrees.noisy_measurements(jr.key(0), TRUE, t, noise=0.1)


def test_sgd_step_updates_every_leaf_of_a_nested_tree():
    params = {"a": jnp.array([1.0, 2.0]), "b": [jnp.array(3.0), {"c": jnp.array([[4.0]])}]}
    grads = {"a": jnp.array([10.0, -10.0]), "b": [jnp.array(1.0), {"c": jnp.array([[2.0]])}]}
    new = pytrees.sgd_step(params, grads, 0.1)
    assert jax.tree.structure(new) == jax.tree.structure(params)
    np.testing.assert_allclose(new["a"], [0.0, 3.0])
    np.testing.assert_allclose(new["b"][0], 2.9)
    np.testing.assert_allclose(new["b"][1]["c"], [[3.8]])


def test_sgd_step_on_a_module_returns_the_same_module_type():
    grads = jax.grad(pytrees.mse)(TRUE, jnp.array([0.0, 1.0]), jnp.array([0.0, 0.0]))
    new = pytrees.sgd_step(TRUE, grads, 0.5)
    assert isinstance(new, pytrees.DampedOscillator)
    np.testing.assert_allclose(new.amplitude, TRUE.amplitude - 0.5 * grads.amplitude)


def test_model_matches_the_formula():
    t = jnp.array([0.0, 1.0, 2.5])
    expected = 1.5 * np.exp(-0.3 * np.asarray(t)) * np.cos(2.0 * np.asarray(t) + 0.5)
    np.testing.assert_allclose(jax.vmap(TRUE)(t), expected, rtol=1e-6)


def test_noise_has_the_requested_size(data):
    t, y = data
    residual = np.asarray(y - jax.vmap(TRUE)(t))
    assert 0.09 < residual.std() < 0.11


def test_initial_guess_finds_the_frequency(data):
    guess = pytrees.initial_guess(*data)
    # The FFT resolves frequencies to 2 pi / 10 s ~ 0.63 rad/s.
    assert abs(float(guess.frequency) - 2.0) < 0.35
    assert float(guess.amplitude) > 1.0


def test_fit_recovers_the_parameters(data):
    t, y = data
    fitted, losses = pytrees.fit(
        pytrees.initial_guess(t, y), t, y, jr.key(1), learning_rate=0.1, n_steps=2000, batch_size=32
    )
    assert losses.shape == (2000,)
    assert float(losses[-200:].mean()) < 0.02 < float(losses[0])
    for name, tol in [("amplitude", 0.1), ("decay", 0.05), ("frequency", 0.05), ("phase", 0.1)]:
        assert abs(float(getattr(fitted, name)) - float(getattr(TRUE, name))) < tol, name


def test_fit_is_reproducible_given_the_key(data):
    t, y = data
    guess = pytrees.initial_guess(t, y)
    kwargs = dict(learning_rate=0.1, n_steps=50, batch_size=16)
    _, a = pytrees.fit(guess, t, y, jr.key(3), **kwargs)
    _, b = pytrees.fit(guess, t, y, jr.key(3), **kwargs)
    _, c = pytrees.fit(guess, t, y, jr.key(4), **kwargs)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_bad_inputs_raise_clear_errors(data):
    t, y = data
    with pytest.raises(ValueError, match="noise"):
        pytrees.noisy_measurements(jr.key(0), TRUE, t, noise=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        pytrees.fit(TRUE, t, y, jr.key(0), learning_rate=0.1, n_steps=1, batch_size=1000)
    with pytest.raises(ValueError, match="equally spaced"):
        pytrees.initial_guess(np.array([0.0, 1.0, 3.0, 4.0]), np.ones(4))
    with pytest.raises(ValueError, match="same length"):
        pytrees.initial_guess(np.arange(5.0), np.ones(4))
