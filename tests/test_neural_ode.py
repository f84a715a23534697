"""The neural ODE: shapes, the pendulum data, training that learns and is reproducible."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.jax_science import neural_ode as node

TS = jnp.linspace(0.0, 6.0, 13)


@pytest.fixture(scope="module")
def data():
    return node.pendulum_data(jr.key(0), 16, TS, noise=0.01)


@pytest.fixture(scope="module")
def trained(data):
    model = node.NeuralODE(node.VectorField(width=16, key=jr.key(1)))
    return model, node.train(model, TS, data[1], steps=60, peak_lr=2e-2)


def test_pendulum_data_is_a_damped_oscillation(data):
    exact, observed = data
    assert exact.shape == observed.shape == (16, len(TS), 2)
    noise = np.asarray(observed - exact)
    assert 0.007 < noise.std() < 0.013
    # friction removes energy: E = v^2 / 2 + 1 - cos(angle) decreases along every trajectory
    energy = exact[..., 1] ** 2 / 2 + 1 - jnp.cos(exact[..., 0])
    assert bool(jnp.all(jnp.diff(energy, axis=1) < 0))
    assert float(jnp.abs(exact[:, 0, 0]).max()) <= 2.0


def test_model_shapes():
    model = node.NeuralODE(node.VectorField(width=8, depth=1, key=jr.key(2)))
    y0 = jnp.array([0.5, -0.2])
    # eval_shape traces the solve without compiling or running it
    assert jax.eval_shape(model, TS, y0).shape == (len(TS), 2)
    assert jax.eval_shape(jax.vmap(model, in_axes=(None, 0)), TS, jnp.zeros((5, 2))).shape == (
        5,
        len(TS),
        2,
    )
    assert model.vector_field(0.0, y0).shape == (2,)
    n_params = sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_array)))
    assert n_params == (2 * 8 + 8) + (8 * 2 + 2)


def test_training_reduces_the_loss(trained):
    model, (fitted, losses) = trained
    assert losses.shape == (60,)
    assert np.all(np.isfinite(losses))
    assert losses[-10:].mean() < losses[:5].mean() / 10, (losses[:5], losses[-10:])
    assert fitted.rtol == model.rtol and fitted.vector_field is not model.vector_field


def test_training_is_deterministic(trained, data):
    model, (fitted, losses) = trained
    again, losses_again = node.train(model, TS, data[1], steps=60, peak_lr=2e-2)
    np.testing.assert_array_equal(losses, losses_again)
    for a, b in zip(jax.tree.leaves(fitted), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_training_input_is_refused(data):
    model = node.NeuralODE(node.VectorField(width=8, key=jr.key(3)))
    with pytest.raises(ValueError, match="len\\(ts\\)"):
        node.train(model, TS[:-1], data[1], steps=1)
    with pytest.raises(ValueError, match="positive"):
        node.train(model, TS, data[1], steps=0)
