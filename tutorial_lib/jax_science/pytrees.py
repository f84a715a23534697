"""Pytrees of parameters: a damped oscillator fitted by hand-written minibatch SGD.

The model's parameters live in an `equinox.Module`, which is a pytree, so
`jax.grad` of a loss returns a gradient *with the same structure* and one
`jax.tree.map` applies the update to every parameter at once (`sgd_step`).
`fit` runs that step in a compiled `jax.lax.scan`, drawing each minibatch with a
key derived from the step number by `jax.random.fold_in`, so a fit is reproducible.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

__all__ = ["DampedOscillator", "fit", "initial_guess", "mse", "noisy_measurements", "sgd_step"]


class DampedOscillator(eqx.Module):
    """Displacement `x(t) = amplitude * exp(-decay * t) * cos(frequency * t + phase)`.

    `decay` is a rate [1/s] and `frequency` an angular frequency [rad/s].
    """

    amplitude: Float[Array, ""]
    decay: Float[Array, ""]
    frequency: Float[Array, ""]
    phase: Float[Array, ""]

    def __init__(self, amplitude, decay, frequency, phase):
        self.amplitude = jnp.asarray(amplitude, dtype=jnp.float32)
        self.decay = jnp.asarray(decay, dtype=jnp.float32)
        self.frequency = jnp.asarray(frequency, dtype=jnp.float32)
        self.phase = jnp.asarray(phase, dtype=jnp.float32)

    def __call__(self, t: Float[Array, ""]) -> Float[Array, ""]:
        """The displacement at one time `t`; `jax.vmap` it over many times."""
        return self.amplitude * jnp.exp(-self.decay * t) * jnp.cos(self.frequency * t + self.phase)


def noisy_measurements(
    key: PRNGKeyArray, model: DampedOscillator, t: Float[ArrayLike, " n"], noise: float
) -> Float[Array, " n"]:
    """The displacement at times `t` plus Gaussian noise of standard deviation `noise`."""
    if noise < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}.")
    t = jnp.asarray(t)
    return jax.vmap(model)(t) + noise * jr.normal(key, t.shape)


def mse(model: DampedOscillator, t: Float[Array, " n"], y: Float[Array, " n"]) -> Float[Array, ""]:
    """Mean squared error of the model against measurements `y` at times `t`."""
    return jnp.mean((jax.vmap(model)(t) - y) ** 2)


def sgd_step(params: PyTree, grads: PyTree, learning_rate: float) -> PyTree:
    """One gradient-descent update of every leaf: `p - learning_rate * g`.

    `params` and `grads` must have the same pytree structure, as `jax.grad` guarantees.
    """
    return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)


def initial_guess(t: Float[ArrayLike, "..."], y: Float[ArrayLike, "..."]) -> DampedOscillator:
    """A starting point for `fit`: the peak of the spectrum gives the frequency.

    Gradient descent cannot find the frequency of an oscillation from far away (the loss is
    full of local minima in it), so we read it off the data, as an experimentalist would.
    `t` and `y` must be 1-D, of the same length (at least 4), and `t` equally spaced; a
    `ValueError` says which condition fails.
    """
    t, y = np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if t.ndim != 1 or t.shape != y.shape or len(t) < 4:
        raise ValueError(
            f"t and y must be 1-D arrays of the same length >= 4, got {t.shape} and {y.shape}."
        )
    spacing = np.diff(t)
    if not np.allclose(spacing, spacing[0], rtol=1e-3):
        raise ValueError("t must be equally spaced to estimate the frequency from an FFT.")
    spectrum = np.abs(np.fft.rfft(y - y.mean()))
    omegas = 2 * np.pi * np.fft.rfftfreq(len(t), d=spacing[0])
    return DampedOscillator(np.abs(y).max(), 0.1, omegas[1:][np.argmax(spectrum[1:])], 0.0)


@eqx.filter_jit
def fit(
    model: DampedOscillator,
    t: Float[Array, " n"],
    y: Float[Array, " n"],
    key: PRNGKeyArray,
    *,
    learning_rate: float,
    n_steps: int,
    batch_size: int,
) -> tuple[DampedOscillator, Float[Array, " n_steps"]]:
    """Fit `model` to `(t, y)` by minibatch SGD; returns the fitted model and the losses.

    Step `i` draws `batch_size` measurements with the key `fold_in(key, i)`, so the run is
    reproducible and independent of how the loop is executed.
    """
    if not 1 <= batch_size <= t.shape[0]:
        raise ValueError(f"batch_size must be between 1 and {t.shape[0]}, got {batch_size}.")
    loss_and_grad = jax.value_and_grad(mse)

    def step(model, i):
        batch = jr.choice(jr.fold_in(key, i), t.shape[0], (batch_size,), replace=False)
        loss, grads = loss_and_grad(model, t[batch], y[batch])
        return sgd_step(model, grads, learning_rate), loss

    return jax.lax.scan(step, model, jnp.arange(n_steps))
