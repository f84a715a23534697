r"""Fitting a physical model to noisy data by nonlinear least squares, with JAX derivatives.

The running example of the book's "Function transformations" chapter is the *ringdown* of a
damped oscillator — a plucked string, a MEMS resonator, a pendulum in air:

$$
x(t; \theta) = A\, e^{-\gamma t} \cos(\omega t + \varphi), \qquad
\theta = (A, \gamma, \omega, \varphi),
$$

observed with Gaussian noise at times $t_i$. The misfit is the mean squared residual,
and `gauss_newton` minimises it with damped Gauss–Newton (Levenberg–Marquardt) steps,
whose Jacobian of the residuals comes from `jax.jacfwd` — forward mode, the cheap mode
for a model with few parameters and many observations (Nocedal & Wright 2006, ch. 10).
"""

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

__all__ = ["Model", "gauss_newton", "gauss_newton_step", "misfit", "ringdown", "simulate_ringdown"]

Model = Callable[[Float[Array, " p"], Float[Array, " m"]], Float[Array, " m"]]


def ringdown(theta: Float[ArrayLike, "4"], t: Float[ArrayLike, "*times"]) -> Float[Array, "*times"]:
    """Damped oscillation `A exp(-gamma t) cos(omega t + phi)` with `theta = (A, gamma,
    omega, phi)`; `t` may be a scalar or an array of times (the result has its shape)."""
    amplitude, rate, omega, phase = theta[0], theta[1], theta[2], theta[3]
    return amplitude * jnp.exp(-rate * t) * jnp.cos(omega * t + phase)


def _check_data(theta, t, y):
    if jnp.ndim(theta) != 1:
        raise ValueError(f"theta must be a 1-D parameter vector, got shape {jnp.shape(theta)}.")
    if jnp.ndim(t) != 1 or jnp.shape(t) != jnp.shape(y):
        raise ValueError(
            f"t and y must be 1-D arrays of the same length (one observation per time), "
            f"got shapes {jnp.shape(t)} and {jnp.shape(y)}."
        )


def simulate_ringdown(
    key: PRNGKeyArray, theta: Float[ArrayLike, "..."], t: Float[ArrayLike, " m"], noise: float
) -> Float[Array, " m"]:
    """Noisy observations `ringdown(theta, t) + noise * N(0, 1)`, deterministic in `key`."""
    if not noise >= 0:
        raise ValueError(f"noise must be a non-negative standard deviation, got {noise!r}.")
    if jnp.shape(theta) != (4,):
        raise ValueError(
            f"theta must be (A, gamma, omega, phi), shape (4,), got {jnp.shape(theta)}."
        )
    t = jnp.asarray(t)
    return ringdown(jnp.asarray(theta), t) + noise * jr.normal(key, t.shape, t.dtype)


def misfit(
    model: Model, theta: Float[Array, " p"], t: Float[Array, " m"], y: Float[Array, " m"]
) -> Float[Array, ""]:
    """Half the mean squared residual `0.5 * mean((model(theta, t) - y) ** 2)`."""
    return 0.5 * jnp.mean((model(theta, t) - y) ** 2)


def gauss_newton_step(
    model: Model,
    theta: Float[Array, " p"],
    t: Float[Array, " m"],
    y: Float[Array, " m"],
    damping: float | Float[Array, ""] = 1e-3,
) -> Float[Array, " p"]:
    """One Levenberg–Marquardt step: solve `(J^T J + damping * diag(J^T J)) delta = -J^T r`.

    `r = model(theta, t) - y` are the residuals and `J = dr/dtheta` (shape `(m, p)`) is
    computed with `jax.jacfwd`: `p` forward passes, cheap when `p` is small.
    """
    residual = model(theta, t) - y
    jac = jax.jacfwd(model)(theta, t)  # (m, p)
    normal = jac.T @ jac
    normal = normal + damping * jnp.diag(jnp.diag(normal))
    return theta - jnp.linalg.solve(normal, jac.T @ residual)


@functools.partial(jax.jit, static_argnames=("model", "n_iter"))
def _gauss_newton(model, theta0, t, y, n_iter, damping):
    def body(theta, _):
        new = gauss_newton_step(model, theta, t, y, damping)
        return new, misfit(model, new, t, y)

    theta, history = jax.lax.scan(body, theta0, length=n_iter)
    return theta, jnp.concatenate([misfit(model, theta0, t, y)[None], history])


def gauss_newton(
    model: Model,
    theta0: Float[ArrayLike, "..."],
    t: Float[ArrayLike, "..."],
    y: Float[ArrayLike, "..."],
    n_iter: int = 20,
    damping: float = 1e-3,
) -> tuple[Float[Array, " p"], Float[Array, " {n_iter}+1"]]:
    """Fit `model(theta, t) ~ y` from `theta0` with `n_iter` damped Gauss–Newton steps.

    Returns the fitted parameters and the misfit before the first and after every step.
    Like every local method it needs a start in the basin of the right minimum (for an
    oscillation, a frequency guess within a few per cent). Compiled; `model` must be a
    hashable function (define it once, not as a new `lambda` per call). The shapes — `theta0`
    `(p,)`, `t` and `y` both `(m,)` — are checked here, with a `ValueError` naming the mismatch.
    """
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive int, got {n_iter!r}.")
    if not damping >= 0:
        raise ValueError(f"damping must be non-negative, got {damping!r}.")
    theta0, t, y = jnp.asarray(theta0), jnp.asarray(t), jnp.asarray(y)
    _check_data(theta0, t, y)
    return _gauss_newton(model, theta0, t, y, n_iter, damping)
