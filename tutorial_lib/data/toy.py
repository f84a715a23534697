"""Toy 2-D distributions for the sampling chapters, with exact densities where they exist."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray


def swiss_roll(key: PRNGKeyArray, n: int, *, noise: float = 0.1) -> Float[Array, "n 2"]:
    """The 2-D Swiss roll (a spiral), scaled to roughly unit standard deviation."""
    k_t, k_noise = jr.split(key)
    t = 1.5 * jnp.pi * (1 + 2 * jr.uniform(k_t, (n,)))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=-1) / 7.0
    return x + noise * jr.normal(k_noise, (n, 2))


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
