"""Denoising score matching with noise conditioning (NCSN) on 2-D data.

A network :math:`s_\\theta(x, \\sigma)` learns the score :math:`\\nabla_x \\log p_\\sigma(x)` of
the data distribution convolved with :math:`\\mathcal N(0, \\sigma^2 I)` for every noise level of a
geometric ladder :math:`\\sigma_1 > \\dots > \\sigma_L` (Song & Ermon 2019). It never sees a
density: denoising score matching (Vincent 2011) regresses the score of the Gaussian *kernel*,

.. math::

    \\ell(\\theta; \\sigma) = \\tfrac12\\, \\mathbb E_{x \\sim p,\\ z \\sim \\mathcal N(0, I)}
    \\big\\| s_\\theta(x + \\sigma z, \\sigma) + z / \\sigma \\big\\|^2,

whose minimiser is the score of :math:`p_\\sigma`. Weighting level :math:`\\sigma` by
:math:`\\sigma^2` makes every level's loss of order one:
:math:`\\tfrac12 \\| \\sigma s_\\theta + z\\|^2`.

- :func:`swiss_roll`: the normalised 2-D Swiss roll (the data of the chapter).
- :class:`NoiseConditionalScore`: an MLP :math:`s_\\theta(x, \\sigma)`.
- :func:`dsm_loss_single`, :func:`dsm_loss`: the weighted loss for one point, and averaged over
  a batch with random noise levels and noise.
- :func:`train`: Adam on random minibatches, the steps run by :func:`jax.lax.scan` (generic: any
  ``loss(model, batch, key)``; the SDE chapter reuses it).
- :func:`empirical_noised_score`: the exact score of a *finite* data set convolved with
  :math:`\\mathcal N(0, \\sigma^2 I)`, the minimiser of the loss on that data set.
- :func:`nearest_distance`: the distance from each sample to the nearest point of a data set,
  to measure how close generated samples are to the data.

Sampling with a trained model is :func:`tutorial_lib.sampling.annealed_langevin`, which takes a
score of the form ``score(x, sigma)`` such as a :class:`NoiseConditionalScore`.
"""

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

__all__ = [
    "NoiseConditionalScore",
    "dsm_loss",
    "dsm_loss_single",
    "empirical_noised_score",
    "make_optimiser",
    "nearest_distance",
    "swiss_roll",
    "swiss_roll_curve",
    "swiss_roll_score",
    "train",
]

# --- data --------------------------------------------------------------------------------------

_ROLL_T_MIN, _ROLL_T_MAX = 1.5 * np.pi, 4.5 * np.pi


@functools.cache
def _swiss_roll_moments() -> tuple[np.ndarray, float]:
    """Mean (2,) and RMS standard deviation of the noise-free roll (t cos t, t sin t),
    t ~ U[1.5 pi, 4.5 pi], by the midpoint rule on a fine grid (error < 1e-9)."""
    edges = np.linspace(_ROLL_T_MIN, _ROLL_T_MAX, 1_000_001)
    t = 0.5 * (edges[1:] + edges[:-1])
    curve = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    return curve.mean(axis=0), float(np.sqrt(curve.var(axis=0).mean()))


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def _normalise(t: Float[Array, " n"]) -> Float[Array, "n 2"]:
    mean, scale = _swiss_roll_moments()
    curve = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=-1)
    return (curve - jnp.asarray(mean, jnp.float32)) / scale


def swiss_roll(key: PRNGKeyArray, n: int, *, noise: float = 0.05) -> Float[Array, "n 2"]:
    """``n`` points of the 2-D Swiss roll (a spiral), centred and scaled to unit variance.

    The curve is :math:`(t \\cos t, t \\sin t)` with :math:`t \\sim U[1.5\\pi, 4.5\\pi]` (one and a
    half turns). It is shifted by its exact mean and divided by its exact root-mean-square
    standard deviation, so the noise-free roll has mean 0 and variance 1 averaged over the two
    coordinates (the same scale in both, so the spiral keeps its shape); then Gaussian noise of
    standard deviation ``noise`` is added. The arms are about 0.9 apart.

    (:func:`tutorial_lib.data.toy.swiss_roll` is the same curve, only divided by 7.)
    """
    n = _check_count("n", n)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a standard deviation >= 0, got {noise!r}.")
    k_t, k_noise = jr.split(key)
    t = jr.uniform(k_t, (n,), minval=_ROLL_T_MIN, maxval=_ROLL_T_MAX)
    return _normalise(t) + noise * jr.normal(k_noise, (n, 2))


def swiss_roll_curve(n: int = 5_000) -> Float[Array, "n 2"]:
    """The noise-free roll of :func:`swiss_roll` at ``n`` equally spaced values of ``t``
    (midpoints of ``n`` equal cells), in order along the spiral: a dense polyline, to measure
    distances to the roll and to integrate over it."""
    n = _check_count("n", n)
    edges = jnp.linspace(_ROLL_T_MIN, _ROLL_T_MAX, n + 1)
    return _normalise(0.5 * (edges[1:] + edges[:-1]))


# --- model -------------------------------------------------------------------------------------


class NoiseConditionalScore(eqx.Module):
    """A noise-conditional score network, an MLP ``f`` with fixed input and output scalings:

    .. math::

        s_\\theta(x, \\sigma) = f_\\theta\\big(x / \\sqrt{1 + \\sigma^2},\\ \\log\\sigma\\big)
        / \\sigma.

    ``f`` is an MLP with SiLU activations on the point and the log noise level. The two fixed
    scalings are preconditioning, not extra capacity: data of unit variance noised with
    :math:`\\sigma` have variance :math:`1 + \\sigma^2`, so the input stays of order one; and the
    score of :math:`p_\\sigma` is of order :math:`1/\\sigma`, so ``f`` itself stays of order one at
    every level (Song & Ermon 2020). Call it on ONE point: ``(x: (d,), sigma: scalar) -> (d,)``.
    """

    mlp: eqx.nn.MLP

    def __init__(self, dim: int = 2, width: int = 128, depth: int = 3, *, key: PRNGKeyArray):
        self.mlp = eqx.nn.MLP(dim + 1, dim, width, depth, activation=jax.nn.silu, key=key)

    def __call__(self, x: Float[Array, " d"], sigma: Float[ArrayLike, ""]) -> Float[Array, " d"]:
        sigma = jnp.asarray(sigma, x.dtype)
        h = jnp.concatenate([x / jnp.sqrt(1 + sigma**2), jnp.log(sigma)[None]])
        return self.mlp(h) / sigma


# --- loss --------------------------------------------------------------------------------------

NoisyScore = Callable[[Float[Array, " d"], Float[ArrayLike, ""]], Float[Array, " d"]]


def dsm_loss_single(
    score: NoisyScore, x: Float[Array, " d"], sigma: Float[ArrayLike, ""], z: Float[Array, " d"]
) -> Float[Array, ""]:
    """The sigma^2-weighted denoising score matching loss of ONE data point ``x``, noise level
    ``sigma`` and standard normal draw ``z``:
    ``0.5 * || sigma * score(x + sigma z, sigma) + z ||^2``."""
    return 0.5 * jnp.sum((sigma * score(x + sigma * z, sigma) + z) ** 2)


def _check_batch(x) -> None:
    if np.ndim(x) != 2:
        raise ValueError(
            f"the data must be a 2-D array of shape (n_points, dim), got shape {np.shape(x)}."
        )


def _check_sigmas(sigmas) -> None:
    if np.ndim(sigmas) != 1 or np.shape(sigmas)[0] < 1:
        raise ValueError(f"sigmas must be a non-empty 1-D array, got shape {np.shape(sigmas)}.")
    try:
        value = np.asarray(sigmas)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    if not np.all(np.isfinite(value)) or np.any(value <= 0):
        raise ValueError(f"sigmas must all be positive and finite, got {value}.")


def dsm_loss(
    score: NoisyScore,
    x: Float[Array, "n d"],
    key: PRNGKeyArray,
    sigmas: Float[ArrayLike, " n_levels"],
) -> Float[Array, ""]:
    """The NCSN objective on a batch: each point gets a noise level drawn uniformly from
    ``sigmas`` and its own Gaussian noise; the result is the mean of :func:`dsm_loss_single`."""
    _check_batch(x)
    _check_sigmas(sigmas)
    sigmas = jnp.asarray(sigmas, x.dtype)
    k_level, k_noise = jr.split(key)
    level = jr.randint(k_level, (x.shape[0],), 0, sigmas.shape[0])
    z = jr.normal(k_noise, x.shape, x.dtype)
    losses = jax.vmap(dsm_loss_single, in_axes=(None, 0, 0, 0))(score, x, sigmas[level], z)
    return jnp.mean(losses)


# --- training ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def make_optimiser(steps: int, learning_rate: float = 3e-3) -> optax.GradientTransformation:
    """Adam with a short linear warm-up and a cosine decay to 1 % of the peak; gradients clipped
    to norm 1.

    Cached: the same arguments return the same (stateless) object, so that :func:`train` called
    again with the same settings reuses its compiled steps instead of compiling them anew."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=learning_rate,
        warmup_steps=max(1, steps // 50),
        decay_steps=steps,
        end_value=learning_rate / 100,
    )
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


@eqx.filter_jit
def _train_chunk(params, static, opt_state, data, keys, loss_fn, batch_size, optimiser):
    """Run ``len(keys)`` optimiser steps in one ``lax.scan``; returns the per-step losses."""

    def step(carry, key):
        params, opt_state = carry
        k_batch, k_loss = jr.split(key)
        batch = data[jr.randint(k_batch, (batch_size,), 0, data.shape[0])]

        def loss_of(p):
            return loss_fn(eqx.combine(p, static), batch, k_loss)

        value, grads = jax.value_and_grad(loss_of)(params)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys)
    return params, opt_state, losses


def train(
    loss_fn: Callable[[PyTree, Float[Array, "batch d"], PRNGKeyArray], Float[Array, ""]],
    model: PyTree,
    data: Float[ArrayLike, "n d"],
    key: PRNGKeyArray,
    *,
    steps: int,
    batch_size: int = 256,
    learning_rate: float = 3e-3,
    chunk: int = 500,
) -> tuple[PyTree, Float[np.ndarray, " steps"]]:
    """Train ``model`` by minimising ``loss_fn(model, batch, key)`` over random minibatches.

    Each step draws ``batch_size`` rows of ``data`` (with replacement) and a fresh key for the
    loss, and takes one step of :func:`make_optimiser`. The steps run inside
    :func:`jax.lax.scan`, ``chunk`` at a time, so Python is entered only once per chunk. The
    same key gives the same model. ``loss_fn`` must be hashable (a plain function, or a
    :func:`functools.partial` of one): it is compiled once and reused.

    Returns:
        The trained model and the loss at every step (NumPy, shape ``(steps,)``).
    """
    for name, value in [("steps", steps), ("batch_size", batch_size), ("chunk", chunk)]:
        _check_count(name, value)
    data = jnp.asarray(data)
    _check_batch(data)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    optimiser = make_optimiser(steps, learning_rate)
    opt_state = optimiser.init(params)
    keys = jr.split(key, steps)
    losses = []
    for start in range(0, steps, chunk):
        params, opt_state, chunk_losses = _train_chunk(
            params,
            static,
            opt_state,
            data,
            keys[start : start + chunk],
            loss_fn,
            batch_size,
            optimiser,
        )
        losses.append(chunk_losses)
    return eqx.combine(params, static), np.asarray(jnp.concatenate(losses))


# --- evaluation --------------------------------------------------------------------------------


def empirical_noised_score(
    data: Float[Array, "n d"], x: Float[Array, " d"], sigma: Float[ArrayLike, ""]
) -> Float[Array, " d"]:
    """The exact score at ONE point ``x`` of the data set's empirical distribution convolved with
    :math:`\\mathcal N(0, \\sigma^2 I)` — an equal-weight Gaussian mixture centred on the data:

    .. math::

        \\nabla_x \\log \\frac1n \\sum_i \\mathcal N(x; x_i, \\sigma^2 I)
        = \\sum_i w_i(x)\\, \\frac{x_i - x}{\\sigma^2},
        \\qquad w = \\operatorname{softmax}_i\\big(-\\|x - x_i\\|^2 / 2\\sigma^2\\big).

    It is the minimiser of the denoising score matching loss *on that data set* (Vincent 2011);
    for large data sets and noise levels that are not too small it approximates the score of the
    underlying distribution.
    """
    sigma = jnp.asarray(sigma, data.dtype)
    diff = data - x
    weights = jax.nn.softmax(-0.5 * jnp.sum(diff**2, axis=1) / sigma**2)
    return weights @ diff / sigma**2


def swiss_roll_score(
    x: Float[Array, " d"],
    sigma: Float[ArrayLike, ""],
    *,
    noise: float = 0.05,
    curve: Float[Array, "m 2"] | None = None,
) -> Float[Array, " 2"]:
    """The exact score at ONE point of the Swiss roll of :func:`swiss_roll` (noise ``noise``)
    convolved with :math:`\\mathcal N(0, \\sigma^2 I)`.

    The roll's density is the uniform law of ``t`` pushed onto the curve and blurred by
    :math:`\\mathcal N(0, \\text{noise}^2 I)`; blurred again by the noise level it is a continuous
    Gaussian mixture along the curve with variance :math:`\\text{noise}^2 + \\sigma^2`. The
    integral over ``t`` is done by the midpoint rule on ``curve`` (default
    ``swiss_roll_curve()``, 5,000 points 0.003 apart: far finer than the smallest width 0.05).
    """
    curve = swiss_roll_curve() if curve is None else curve
    return empirical_noised_score(curve, x, jnp.sqrt(noise**2 + jnp.asarray(sigma) ** 2))


@jax.jit
def nearest_distance(
    samples: Float[ArrayLike, "m d"], data: Float[ArrayLike, "n d"]
) -> Float[Array, " m"]:
    """The Euclidean distance from each sample to its nearest point of ``data``."""
    samples, data = jnp.asarray(samples), jnp.asarray(data)

    def one(x):
        return jnp.sqrt(jnp.min(jnp.sum((data - x) ** 2, axis=1)))

    return jax.lax.map(one, samples, batch_size=256)
