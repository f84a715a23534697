r"""Denoising score matching with noise conditioning (NCSN) on 2-D data.

A network $s_\theta(x, \sigma)$ learns the score $\nabla_x \log p_\sigma(x)$ of
the data distribution convolved with $\mathcal N(0, \sigma^2 I)$ for every noise level of a
geometric ladder $\sigma_1 > \dots > \sigma_L$ (Song & Ermon 2019). It never sees a
density: denoising score matching (Vincent 2011) regresses the score of the Gaussian *kernel*,

$$
\ell(\theta; \sigma) = \tfrac12\, \mathbb E_{x \sim p,\ z \sim \mathcal N(0, I)}
\big\| s_\theta(x + \sigma z, \sigma) + z / \sigma \big\|^2,
$$

whose minimiser is the score of $p_\sigma$. Weighting level $\sigma$ by
$\sigma^2$ makes every level's loss of order one:
$\tfrac12 \| \sigma s_\theta + z\|^2$.

- `swiss_roll` and `swiss_roll_curve`: the normalised 2-D Swiss roll (the data of
  the chapter) and its noise-free curve, re-exported from their owner,
  `tutorial_lib.data.toy`; `swiss_roll_score` is its exact noisy score.
- `NoiseConditionalScore`: an MLP $s_\theta(x, \sigma)$.
- `dsm_loss_single`, `dsm_loss`: the weighted loss for one point, and averaged over
  a batch with random noise levels and noise.
- `train`: Adam on random minibatches, the steps run by `jax.lax.scan` (generic: any
  `loss(model, batch, key)`; the SDE chapter reuses it).
- `empirical_noised_score`: the exact score of a *finite* data set convolved with
  $\mathcal N(0, \sigma^2 I)$, the minimiser of the loss on that data set.
- `nearest_distance`: the distance from each sample to the nearest point of a data set,
  to measure how close generated samples are to the data.

Sampling with a trained model is `tutorial_lib.diffusion.annealed_langevin` (Part I's
`tutorial_lib.jax_science.sampling.annealed_langevin`, re-exported), which takes a score of
the form `score(x, sigma)` such as a `NoiseConditionalScore`.
"""

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpy.typing as npt
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

# The data of the chapter, owned by `tutorial_lib.data.toy`; re-exported for the page's `sm.`
# calls, not documented here (the reference lists them once, under `tutorial_lib.data`).
from tutorial_lib.data.toy import swiss_roll as swiss_roll
from tutorial_lib.data.toy import swiss_roll_curve as swiss_roll_curve

__all__ = [
    "NoiseConditionalScore",
    "NoisyScore",
    "dsm_loss",
    "dsm_loss_single",
    "empirical_noised_score",
    "make_optimiser",
    "nearest_distance",
    "swiss_roll_score",
    "train",
]


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


# --- model -------------------------------------------------------------------------------------


class NoiseConditionalScore(eqx.Module):
    r"""A noise-conditional score network, an MLP `f` with fixed input and output scalings:

    $$
    s_\theta(x, \sigma) = f_\theta\big(x / \sqrt{1 + \sigma^2},\ \log\sigma\big)
    / \sigma.
    $$

    `f` is an MLP with SiLU activations on the point and the log noise level. The two fixed
    scalings are preconditioning, not extra capacity: data of unit variance noised with
    $\sigma$ have variance $1 + \sigma^2$, so the input stays of order one; and the
    score of $p_\sigma$ is of order $1/\sigma$, so `f` itself stays of order one at
    every level (Song & Ermon 2020). Call it on ONE point: `(x: (d,), sigma: scalar) -> (d,)`.
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
    """The sigma^2-weighted denoising score matching loss of ONE data point `x`, noise level
    `sigma` and standard normal draw `z`:
    `0.5 * || sigma * score(x + sigma z, sigma) + z ||^2`."""
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
    x: Float[Array, "..."],
    key: PRNGKeyArray,
    sigmas: npt.ArrayLike,
) -> Float[Array, ""]:
    """The NCSN objective on a batch: each point gets a noise level drawn uniformly from
    `sigmas` and its own Gaussian noise; the result is the mean of `dsm_loss_single`.

    `x` is `(n, d)` and `sigmas` a non-empty 1-D array (or list) of positive levels; other
    inputs raise a `ValueError` saying what is wrong.
    """
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

    Cached: the same arguments return the same (stateless) object, so that `train` called
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
    """Run `len(keys)` optimiser steps in one `lax.scan`; returns the per-step losses."""

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
    data: Float[ArrayLike, "..."],
    key: PRNGKeyArray,
    *,
    steps: object,
    batch_size: object = 256,
    learning_rate: float = 3e-3,
    chunk: object = 500,
) -> tuple[PyTree, Float[np.ndarray, " {steps}"]]:
    """Train `model` by minimising `loss_fn(model, batch, key)` over random minibatches.

    Each step draws `batch_size` rows of `data` (with replacement) and a fresh key for the
    loss, and takes one step of `make_optimiser`. The steps run inside
    `jax.lax.scan`, `chunk` at a time, so Python is entered only once per chunk. The
    same key gives the same model. `loss_fn` must be hashable (a plain function, or a
    `functools.partial` of one): it is compiled once and reused.

    `data` is `(n, d)`; `steps`, `batch_size` and `chunk` are positive ints. Other values
    raise a `ValueError` saying which.

    Returns:
        The trained model and the loss at every step (NumPy, shape `(steps,)`).
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
    r"""The exact score at ONE point `x` of the data set's empirical distribution convolved with
    $\mathcal N(0, \sigma^2 I)$ — an equal-weight Gaussian mixture centred on the data:

    $$
    \nabla_x \log \frac1n \sum_i \mathcal N(x; x_i, \sigma^2 I)
    = \sum_i w_i(x)\, \frac{x_i - x}{\sigma^2},
    \qquad w = \operatorname{softmax}_i\big(-\|x - x_i\|^2 / 2\sigma^2\big).
    $$

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
    r"""The exact score at ONE point of the Swiss roll of `swiss_roll` (noise `noise`)
    convolved with $\mathcal N(0, \sigma^2 I)$.

    The roll's density is the uniform law of `t` pushed onto the curve and blurred by
    $\mathcal N(0, \text{noise}^2 I)$; blurred again by the noise level it is a continuous
    Gaussian mixture along the curve with variance $\text{noise}^2 + \sigma^2$. The
    integral over `t` is done by the midpoint rule on `curve` (default
    `swiss_roll_curve()`, 5,000 points 0.003 apart: far finer than the smallest width 0.05).
    """
    curve = swiss_roll_curve() if curve is None else curve
    return empirical_noised_score(curve, x, jnp.sqrt(noise**2 + jnp.asarray(sigma) ** 2))


@jax.jit
def nearest_distance(
    samples: Float[ArrayLike, "m d"], data: Float[ArrayLike, "n d"]
) -> Float[Array, " m"]:
    """The Euclidean distance from each sample to its nearest point of `data`."""
    samples, data = jnp.asarray(samples), jnp.asarray(data)

    def one(x):
        return jnp.sqrt(jnp.min(jnp.sum((data - x) ** 2, axis=1)))

    return jax.lax.map(one, samples, batch_size=256)
