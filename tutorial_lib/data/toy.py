"""Toy 2-D distributions for the sampling chapters, with exact densities where they exist."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = [
    "GaussianMixture",
    "example_mixture",
    "ring_mixture",
    "swiss_roll",
    "swiss_roll_curve",
    "two_moons",
]

# --- the Swiss roll ----------------------------------------------------------------------------

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


def swiss_roll(key: PRNGKeyArray, n: object, *, noise: float = 0.05) -> Float[Array, "n 2"]:
    r"""`n` points of the 2-D Swiss roll (a spiral), centred and scaled to unit variance.

    The curve is $(t \cos t, t \sin t)$ with $t \sim U[1.5\pi, 4.5\pi]$ (one and a
    half turns). It is shifted by its exact mean and divided by its exact root-mean-square
    standard deviation, so the noise-free roll has mean 0 and variance 1 averaged over the two
    coordinates (the same scale in both, so the spiral keeps its shape); then Gaussian noise of
    standard deviation `noise` is added. The arms are about 0.9 apart. `n` must be a positive
    int and `noise` non-negative, or a `ValueError` says so.
    """
    n = _check_count("n", n)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a standard deviation >= 0, got {noise!r}.")
    k_t, k_noise = jr.split(key)
    t = jr.uniform(k_t, (n,), minval=_ROLL_T_MIN, maxval=_ROLL_T_MAX)
    return _normalise(t) + noise * jr.normal(k_noise, (n, 2))


def swiss_roll_curve(n: int = 5_000) -> Float[Array, "n 2"]:
    """The noise-free roll of `swiss_roll` at `n` equally spaced values of `t`
    (midpoints of `n` equal cells), in order along the spiral: a dense polyline, to measure
    distances to the roll and to integrate over it."""
    n = _check_count("n", n)
    edges = jnp.linspace(_ROLL_T_MIN, _ROLL_T_MAX, n + 1)
    return _normalise(0.5 * (edges[1:] + edges[:-1]))


# --- other toy data ----------------------------------------------------------------------------


def two_moons(key: PRNGKeyArray, n: int, *, noise: float = 0.05) -> Float[Array, "n 2"]:
    """Two interleaved half circles (n // 2 upper, the rest lower), centred at the origin."""
    k_t, k_noise = jr.split(key)
    t = jnp.pi * jr.uniform(k_t, (n,))
    upper = jnp.arange(n) < n // 2
    x = jnp.where(
        upper[:, None],
        jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1),
        jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=-1),
    )
    return x - jnp.array([0.5, 0.25]) + noise * jr.normal(k_noise, (n, 2))


class GaussianMixture(eqx.Module):
    """A mixture of K Gaussians in d dimensions with exact log-density and score.

    `log_prob` and `score` take ONE point `(d,)`; use `jax.vmap` for batches. Both are pure
    JAX and can be jitted, vmapped and differentiated.
    """

    weights: Float[Array, " k"]
    means: Float[Array, "k d"]
    covariances: Float[Array, "k d d"]

    def __init__(self, weights, means, covariances):
        weights = jnp.asarray(weights, dtype=jnp.float32)
        self.weights = weights / jnp.sum(weights)
        self.means = jnp.asarray(means, dtype=jnp.float32)
        self.covariances = jnp.asarray(covariances, dtype=jnp.float32)

    @classmethod
    def isotropic(cls, weights, means, stds) -> "GaussianMixture":
        """Components with covariance `stds[k]**2 * I`."""
        means = jnp.asarray(means, dtype=jnp.float32)
        stds = jnp.broadcast_to(jnp.asarray(stds, dtype=jnp.float32), means.shape[:1])
        eye = jnp.eye(means.shape[1], dtype=jnp.float32)
        return cls(weights, means, stds[:, None, None] ** 2 * eye)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _component_log_probs(self, x: Float[Array, " d"]) -> Float[Array, " k"]:
        chol = jnp.linalg.cholesky(self.covariances)
        diff = x - self.means
        z = jax.vmap(lambda c, v: jax.scipy.linalg.solve_triangular(c, v, lower=True))(chol, diff)
        log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), axis=1)
        return -0.5 * (jnp.sum(z**2, axis=1) + log_det + self.dim * jnp.log(2 * jnp.pi))

    def log_prob(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        """log p(x) of one point."""
        return jax.nn.logsumexp(jnp.log(self.weights) + self._component_log_probs(x))

    def score(self, x: Float[Array, " d"]) -> Float[Array, " d"]:
        """The score grad_x log p(x) of one point, in closed form:
        sum_k r_k(x) Sigma_k^{-1} (mu_k - x), with responsibilities r_k(x)."""
        resp = jax.nn.softmax(jnp.log(self.weights) + self._component_log_probs(x))
        pulls = jnp.linalg.solve(self.covariances, (self.means - x)[..., None])[..., 0]
        return resp @ pulls

    def sample(self, key: PRNGKeyArray, n: int) -> Float[Array, "n d"]:
        """`n` independent samples."""
        k_comp, k_noise = jr.split(key)
        comp = jr.choice(k_comp, self.weights.shape[0], (n,), p=self.weights)
        eps = jr.normal(k_noise, (n, self.dim))
        chol = jnp.linalg.cholesky(self.covariances)
        return self.means[comp] + jnp.einsum("nij,nj->ni", chol[comp], eps)

    def noised(self, sigma: float | Float[Array, ""]) -> "GaussianMixture":
        """The law of x + sigma * eps, eps ~ N(0, I): again a mixture, covariances + sigma^2 I.

        Its `score` is the exact noisy score that denoising score matching learns.
        """
        eye = jnp.eye(self.dim, dtype=self.covariances.dtype)
        return GaussianMixture(self.weights, self.means, self.covariances + sigma**2 * eye)


def ring_mixture(
    n_components: int = 8, *, radius: float = 4.0, std: float = 0.5
) -> GaussianMixture:
    """Equal-weight isotropic Gaussians evenly spaced on a circle (the "8 Gaussians" toy)."""
    angles = 2 * jnp.pi * jnp.arange(n_components) / n_components
    means = radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)
    return GaussianMixture.isotropic(jnp.ones(n_components), means, std)


def example_mixture() -> GaussianMixture:
    """An asymmetric 2-D mixture of three Gaussians with unequal weights and correlations."""
    return GaussianMixture(
        weights=[0.5, 0.3, 0.2],
        means=[[-2.0, -1.0], [2.0, 1.5], [0.5, -2.5]],
        covariances=[
            [[1.0, 0.6], [0.6, 0.8]],
            [[0.5, -0.2], [-0.2, 0.6]],
            [[0.3, 0.0], [0.0, 0.3]],
        ],
    )
