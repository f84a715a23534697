r"""Langevin dynamics and annealed Langevin dynamics, in JAX and as a NumPy reference.

Convention (Song & Ermon 2019, Algorithm 1): one step of *unadjusted* Langevin dynamics with
step size $\varepsilon$ and score $s(x) = \nabla_x \log p(x)$ is

$$
x \leftarrow x + \tfrac{\varepsilon}{2}\, s(x) + \sqrt{\varepsilon}\, z,
\qquad z \sim \mathcal N(0, I).
$$

For small $\varepsilon$ and many steps the samples are distributed close to $p$
(Roberts & Tweedie 1996); there is no Metropolis correction, so a finite step leaves a bias of
order $\varepsilon$. Annealed Langevin dynamics runs `n_steps_each` such steps at each
of a decreasing sequence of noise levels $\sigma_1 > \dots > \sigma_L$, with the score
of the data convolved with $\mathcal N(0, \sigma_i^2 I)$ and the step
$\alpha_i = \varepsilon\, \sigma_i^2 / \sigma_L^2$.

The JAX samplers take a score of ONE point and `vmap` it over the points, and run the steps
with `jax.lax.scan` inside one compiled program. They are deterministic for a given key:
step `t` (counting across all noise levels) uses the noise
`jax.random.normal(jax.random.split(key, total_steps)[t], x0.shape)`, which the NumPy
reference can be given through its `noise` argument to reproduce a JAX run exactly.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

__all__ = [
    "NoisyScore",
    "Score",
    "annealed_langevin",
    "annealed_langevin_numpy",
    "geometric_sigmas",
    "langevin",
    "langevin_numpy",
    "mixture_score_numpy",
    "nearest_mode_fractions",
]

Score = Callable[[Float[Array, " d"]], Float[Array, " d"]]
NoisyScore = Callable[[Float[Array, " d"], Float[ArrayLike, ""]], Float[Array, " d"]]


# --- input checks ------------------------------------------------------------------------------


def _concrete(value) -> np.ndarray | None:
    """The value as a NumPy array, or None when it is traced (inside jit) and cannot be checked."""
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check_points(x0) -> Float[Array, "n d"]:
    x0 = jnp.asarray(x0)
    if x0.ndim != 2:
        raise ValueError(
            f"x0 must be a 2-D array of shape (n_points, dim), got shape {x0.shape}; "
            "for a single point use x0[None, :]."
        )
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.float32)
    return x0


def _check_positive_step(step_size) -> None:
    value = _concrete(step_size)
    if value is None:
        return
    if value.ndim != 0:
        raise ValueError(f"step_size must be a scalar, got an array of shape {value.shape}.")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"step_size must be a positive number, got {value!r}.")


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(
            f"{name} must be a Python int (it fixes the length of the compiled loop), "
            f"got {value!r} of type {type(value).__name__}."
        )
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}.")
    return int(value)


def _check_sigmas(sigmas) -> None:
    value = _concrete(sigmas)
    if value is None:
        if jnp.ndim(sigmas) != 1 or jnp.shape(sigmas)[0] < 1:
            raise ValueError(
                f"sigmas must be a non-empty 1-D array, got shape {jnp.shape(sigmas)}."
            )
        return
    if value.ndim != 1 or value.size < 1:
        raise ValueError(f"sigmas must be a non-empty 1-D array, got shape {value.shape}.")
    if not np.all(np.isfinite(value)) or np.any(value <= 0):
        raise ValueError(f"sigmas must all be positive and finite, got {value}.")
    if np.any(np.diff(value) >= 0):
        raise ValueError(
            f"sigmas must be strictly decreasing (largest noise level first), got {value}; "
            "reverse them with sigmas[::-1] if they are increasing."
        )


def _check_score_shape(score, *example) -> None:
    out = jax.eval_shape(score, *example)
    shape = getattr(out, "shape", None)
    if shape != example[0].shape:
        raise ValueError(
            f"score must map one point of shape {example[0].shape} to an array of the same shape, "
            f"got {shape if shape is not None else type(out).__name__}; the samplers vmap the "
            "score over points themselves, so write it for a single point."
        )


# --- JAX samplers ------------------------------------------------------------------------------


@eqx.filter_jit
def _run(score, x0, keys, sigmas, alphas, annealed: bool, record_every: int | None):
    """Scan Langevin steps; sigmas/alphas hold one value per step. Records the state every
    `record_every` steps when given."""
    batched = jax.vmap(score, in_axes=(0, None)) if annealed else jax.vmap(score)

    def step(x, inputs):
        key, sigma, alpha = inputs
        s = batched(x, sigma) if annealed else batched(x)
        z = jr.normal(key, x.shape, x.dtype)
        x = x + 0.5 * alpha * s + jnp.sqrt(alpha) * z
        return x, None

    if record_every is None:
        x, _ = jax.lax.scan(step, x0, (keys, sigmas, alphas))
        return x

    n_blocks = keys.shape[0] // record_every

    def block(x, inputs):
        x, _ = jax.lax.scan(step, x, inputs)
        return x, x

    reshape = lambda a: a.reshape(n_blocks, record_every, *a.shape[1:])  # noqa: E731
    _, trajectory = jax.lax.scan(block, x0, (reshape(keys), reshape(sigmas), reshape(alphas)))
    return trajectory


def langevin(
    score: Score,
    x0: Real[ArrayLike, "..."],
    key: PRNGKeyArray,
    step_size: float | Float[ArrayLike, ""],
    n_steps: object,
    *,
    return_trajectory: bool = False,
) -> Float[Array, "n d"] | Float[Array, "{n_steps} n d"]:
    """Unadjusted Langevin dynamics from the points `x0`.

    Each of the `n_steps` steps is `x <- x + (step_size / 2) * score(x) + sqrt(step_size) * z`
    with `z ~ N(0, I)` (the convention of Song & Ermon 2019, whose `alpha` is our
    `step_size`); it targets the density `p` whose score `grad log p` is `score`.

    Args:
        score: the score of ONE point, `(d,) -> (d,)`; it is vmapped over the points. It must
            be a JAX function (it is traced and compiled).
        x0: the starting points, shape `(n, d)`; each is an independent chain.
        key: a JAX PRNG key; the same key gives the same samples.
        step_size: the step `epsilon > 0`.
        n_steps: the number of steps (a Python int).
        return_trajectory: if True, return the state after every step, `(n_steps, n, d)`.

    Returns:
        The final samples `(n, d)` (or the trajectory, see `return_trajectory`).

    Called directly it compiles the loop itself (once per score function and shapes). It can
    also be wrapped in `jax.jit(langevin, static_argnums=(0, 4))` when `score` is a plain
    (hashable) function, or in `equinox.filter_jit` when it is, for example, the bound method
    of an Equinox module holding arrays.
    """
    x0 = _check_points(x0)
    n_steps = _check_count("n_steps", n_steps)
    _check_positive_step(step_size)
    _check_score_shape(score, x0[0])
    alphas = jnp.full((n_steps,), step_size, dtype=x0.dtype)
    keys = jr.split(key, n_steps)
    return _run(score, x0, keys, alphas, alphas, False, 1 if return_trajectory else None)


def annealed_langevin(
    score: NoisyScore,
    x0: Real[ArrayLike, "..."],
    key: PRNGKeyArray,
    sigmas: Float[ArrayLike, "..."],
    step_size: float | Float[ArrayLike, ""],
    n_steps_each: int,
    *,
    return_trajectory: bool = False,
) -> Float[Array, "n d"] | Float[Array, "n_levels n d"]:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    For each noise level `sigmas[i]` in turn (largest first), run `n_steps_each` Langevin
    steps `x <- x + (alpha_i / 2) * score(x, sigmas[i]) + sqrt(alpha_i) * z` with
    `alpha_i = step_size * sigmas[i]**2 / sigmas[-1]**2`, starting each level from the
    samples of the previous one. The step shrinks with the noise level so that the
    signal-to-noise ratio of the updates is the same at every level.

    Args:
        score: the score of the data distribution convolved with `N(0, sigma^2 I)`, for ONE
            point and one noise level: `(x: (d,), sigma: scalar) -> (d,)`. It is vmapped over
            points.
        x0: the starting points, shape `(n, d)`.
        key: a JAX PRNG key; the same key gives the same samples.
        sigmas: the noise levels, positive and strictly decreasing, shape `(L,)`.
        step_size: `epsilon > 0`, the step at the smallest noise level.
        n_steps_each: the number of steps at each level (a Python int).
        return_trajectory: if True, return the samples at the end of every level, `(L, n, d)`.

    Returns:
        The final samples `(n, d)` (or one set per level, see `return_trajectory`).
    """
    x0 = _check_points(x0)
    n_steps_each = _check_count("n_steps_each", n_steps_each)
    _check_positive_step(step_size)
    _check_sigmas(sigmas)
    sigmas = jnp.asarray(sigmas, dtype=x0.dtype)
    _check_score_shape(score, x0[0], sigmas[0])
    level_alphas = step_size * sigmas**2 / sigmas[-1] ** 2
    per_step_sigmas = jnp.repeat(sigmas, n_steps_each)
    per_step_alphas = jnp.repeat(level_alphas, n_steps_each)
    keys = jr.split(key, per_step_sigmas.shape[0])
    record = n_steps_each if return_trajectory else None
    return _run(score, x0, keys, per_step_sigmas, per_step_alphas, True, record)


def geometric_sigmas(sigma_max: float, sigma_min: float, n_levels: int) -> Float[Array, " n"]:
    """`n_levels` noise levels from `sigma_max` down to `sigma_min`, equally spaced in log."""
    if not 0 < sigma_min < sigma_max:
        raise ValueError(
            f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}."
        )
    n_levels = _check_count("n_levels", n_levels)
    if n_levels < 2:
        raise ValueError(f"n_levels must be at least 2 (sigma_max and sigma_min), got {n_levels}.")
    return jnp.geomspace(sigma_max, sigma_min, n_levels)


# --- NumPy reference ---------------------------------------------------------------------------


def _numpy_noise(rng, noise, n_total: int, shape, dtype):
    if noise is not None:
        noise = np.asarray(noise, dtype=dtype)
        if noise.shape != (n_total, *shape):
            raise ValueError(
                f"noise must have shape {(n_total, *shape)} (steps, points, dim), "
                f"got {noise.shape}."
            )
        return lambda t: noise[t]
    rng = np.random.default_rng(rng)
    return lambda t: rng.standard_normal(shape).astype(dtype, copy=False)


def langevin_numpy(
    score: Callable[[np.ndarray], np.ndarray],
    x0: Real[ArrayLike, "..."],
    rng: np.random.Generator | int | None,
    step_size: float,
    n_steps: int,
    *,
    noise: Float[ArrayLike, "..."] | None = None,
) -> Float[np.ndarray, "n d"]:
    """The same sampler as `langevin` written the NumPy way: a Python loop over steps.

    `score` here takes a BATCH `(n, d) -> (n, d)` of NumPy arrays (vectorised over points,
    the fair way to write NumPy). `rng` is a NumPy generator or seed; `noise`, if given,
    supplies the Gaussian draws `(n_steps, n, d)` instead (to reproduce a JAX run).
    """
    x = np.array(x0, copy=True)
    if x.ndim != 2:
        raise ValueError(f"x0 must be a 2-D array (n_points, dim), got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    n_steps = _check_count("n_steps", n_steps)
    _check_positive_step(step_size)
    draw = _numpy_noise(rng, noise, n_steps, x.shape, x.dtype)
    eps = x.dtype.type(step_size)
    for t in range(n_steps):
        x = x + 0.5 * eps * score(x) + np.sqrt(eps) * draw(t)
    return x


def annealed_langevin_numpy(
    score: Callable[[np.ndarray, np.floating], np.ndarray],
    x0: Real[ArrayLike, "..."],
    rng: np.random.Generator | int | None,
    sigmas: Float[ArrayLike, "..."],
    step_size: float,
    n_steps_each: int,
    *,
    noise: Float[ArrayLike, "..."] | None = None,
) -> Float[np.ndarray, "n d"]:
    """The same sampler as `annealed_langevin` as two nested Python loops.

    `score(x, sigma)` takes a BATCH `(n, d)` and a noise level. `noise`, if given, has
    shape `(len(sigmas) * n_steps_each, n, d)`.
    """
    x = np.array(x0, copy=True)
    if x.ndim != 2:
        raise ValueError(f"x0 must be a 2-D array (n_points, dim), got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    n_steps_each = _check_count("n_steps_each", n_steps_each)
    _check_positive_step(step_size)
    _check_sigmas(sigmas)
    sigmas = np.asarray(sigmas, dtype=x.dtype)
    draw = _numpy_noise(rng, noise, len(sigmas) * n_steps_each, x.shape, x.dtype)
    t = 0
    for sigma in sigmas:
        alpha = x.dtype.type(step_size * sigma**2 / sigmas[-1] ** 2)
        for _ in range(n_steps_each):
            x = x + 0.5 * alpha * score(x, sigma) + np.sqrt(alpha) * draw(t)
            t += 1
    return x


def mixture_score_numpy(mixture) -> Callable[..., np.ndarray]:
    """A NumPy batch score `score(x, sigma=0.0)` of a Gaussian mixture convolved with
    `N(0, sigma^2 I)`, for the NumPy reference samplers.

    `mixture` is a `tutorial_lib.data.toy.GaussianMixture` (or anything with
    `weights (k,)`, `means (k, d)` and `covariances (k, d, d)`). The returned function maps
    `x (n, d)` to `(n, d)` in the dtype of `x`.
    """
    log_w = np.log(np.asarray(mixture.weights, dtype=np.float64))
    means = np.asarray(mixture.means, dtype=np.float64)
    covs = np.asarray(mixture.covariances, dtype=np.float64)
    eye = np.eye(means.shape[1])

    def score(x: np.ndarray, sigma: float | np.floating = 0.0) -> np.ndarray:
        prec = np.linalg.inv(covs + sigma**2 * eye)  # (k, d, d)
        _, log_det = np.linalg.slogdet(covs + sigma**2 * eye)
        diff = means[None, :, :] - x[:, None, :]  # (n, k, d)
        pull = np.einsum("kij,nkj->nki", prec, diff)  # Sigma_k^{-1} (mu_k - x)
        logits = log_w - 0.5 * log_det - 0.5 * np.einsum("nki,nki->nk", diff, pull)
        logits -= logits.max(axis=1, keepdims=True)
        resp = np.exp(logits)
        resp /= resp.sum(axis=1, keepdims=True)
        return np.einsum("nk,nki->ni", resp, pull).astype(x.dtype, copy=False)

    return score


def nearest_mode_fractions(
    samples: Float[ArrayLike, "..."], means: Float[ArrayLike, "..."]
) -> Float[np.ndarray, " k"]:
    """The fraction of samples whose nearest mean is `means[k]`, for each `k`."""
    samples, means = np.asarray(samples), np.asarray(means)
    if samples.ndim != 2 or means.ndim != 2 or samples.shape[1] != means.shape[1]:
        raise ValueError(
            f"need samples (n, d) and means (k, d) with the same d, got {samples.shape} "
            f"and {means.shape}."
        )
    dist = np.linalg.norm(samples[:, None, :] - means[None, :, :], axis=-1)
    return np.bincount(dist.argmin(axis=1), minlength=means.shape[0]) / samples.shape[0]
