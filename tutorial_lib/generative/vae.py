"""Variational autoencoders (Kingma & Welling 2014; Rezende et al. 2014) for 8-bit images.

A VAE has a prior `p(z) = N(0, I)`, a decoder `p(x | z)` and an encoder `q(z | x) =
N(mu(x), diag sigma^2(x))`. It maximises the evidence lower bound

$$
\\mathrm{ELBO}(x) = \\mathbb E_{q(z|x)}[\\log p(x | z)] - \\mathrm{KL}(q(z | x) \\,\\|\\, p(z))
\\le \\log p(x),
$$

estimated with the **reparameterisation** `z = mu + sigma * eps`, `eps ~ N(0, I)`: the noise no
longer depends on the parameters, so `jax.grad` differentiates through the sample. With a
weight `beta` on the KL term it is the beta-VAE objective (Higgins et al. 2017).

The decoder's likelihood is a **discretised logistic** per pixel and channel (Salimans et al.
2017): the probability of the 8-bit level is the logistic's mass over its bin, so `-ELBO` is a
bound on the code length of the image itself, in the same bits/dim as a flow.

Single-image functions; batch them with `jax.vmap`. Images are `(3, s, s)` in `[0, 1]`, channels
first, as `eqx.nn.Conv2d` takes them.
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = [
    "ELBO",
    "VAE",
    "ConvDecoder",
    "ConvEncoder",
    "discretised_logistic_log_prob",
    "elbo",
    "gaussian_kl",
    "reparameterise",
]

LOG_SCALE_MIN = -7.0  # the narrowest logistic allowed (its scale stays above ~1/1100)


def reparameterise(
    key: PRNGKeyArray, mean: Float[Array, " d"], log_var: Float[Array, " d"]
) -> Float[Array, " d"]:
    """A sample of `N(mean, diag exp(log_var))` written as a differentiable function of
    `mean` and `log_var`: `mean + exp(log_var / 2) * eps` with `eps ~ N(0, I)`."""
    return mean + jnp.exp(0.5 * log_var) * jr.normal(key, mean.shape)


def gaussian_kl(mean: Float[Array, " d"], log_var: Float[Array, " d"]) -> Float[Array, ""]:
    """`KL(N(mean, diag exp(log_var)) || N(0, I))` in closed form (nats)."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var)


class ELBO(eqx.Module):
    """The terms of the (beta-)ELBO of one input, in nats."""

    elbo: Float[Array, ""]  # reconstruction - beta * kl
    reconstruction: Float[Array, ""]  # E_q[log p(x | z)] (Monte Carlo)
    kl: Float[Array, ""]  # KL(q(z | x) || p(z)) (closed form)


def elbo(
    log_likelihood: Callable[[Float[Array, " d"]], Float[Array, ""]],
    mean: Float[Array, " d"],
    log_var: Float[Array, " d"],
    key: PRNGKeyArray,
    *,
    beta: float | Array = 1.0,
    samples: int = 1,
) -> ELBO:
    """`E_q[log_likelihood(z)] - beta * KL(q || N(0, I))` for `q = N(mean, diag exp(log_var))`.

    `log_likelihood(z)` is `log p(x | z)` of the input at hand; the expectation is the mean
    over `samples` reparameterised draws (unbiased; each draw is differentiable in `mean` and
    `log_var`). With `beta = 1` this is a lower bound on `log p(x)`, tight when `q` is the exact
    posterior.
    """
    zs = jax.vmap(lambda k: reparameterise(k, mean, log_var))(jr.split(key, samples))
    reconstruction = jnp.mean(jax.vmap(log_likelihood)(zs))
    kl = gaussian_kl(mean, log_var)
    return ELBO(reconstruction - beta * kl, reconstruction, kl)


def discretised_logistic_log_prob(
    x: Float[Array, "*shape"], loc: Float[Array, "*shape"], log_scale: Float[Array, "*shape"]
) -> Float[Array, ""]:
    """`log P(x)` of 8-bit values `x` in `[0, 1]` (levels `k / 255`) under logistics with
    location `loc` and scale `exp(log_scale)`, each level owning the bin of width `1 / 255`
    around it (the first and last bins extend to infinity), summed over all entries."""
    half = 0.5 / 255.0
    log_scale = jnp.maximum(log_scale, LOG_SCALE_MIN)
    inv = jnp.exp(-log_scale)
    centred = x - loc
    upper, lower = inv * (centred + half), inv * (centred - half)
    log_cdf_upper = jax.nn.log_sigmoid(upper)  # log P(X <= x + half), for the level 0 bin
    log_sf_lower = jax.nn.log_sigmoid(-lower)  # log P(X > x - half), for the level 255 bin
    mass = jax.nn.sigmoid(upper) - jax.nn.sigmoid(lower)
    # Where the mass underflows, the density at the centre times the bin width is accurate.
    mid = inv * centred
    log_density_mid = mid - log_scale - 2.0 * jax.nn.softplus(mid)
    log_mass = jnp.where(
        mass > 1e-5,
        jnp.log(jnp.maximum(mass, 1e-12)),
        log_density_mid + math.log(2 * half),
    )
    level = jnp.round(x * 255.0)
    out = jnp.where(level <= 0, log_cdf_upper, jnp.where(level >= 255, log_sf_lower, log_mass))
    return jnp.sum(out)


class ConvEncoder(eqx.Module):
    """`(3, s, s)` -> mean and log-variance of `q(z | x)`, each `(latent_dim,)`.

    Three stride-2 convolutions (s -> s/8) and a linear layer.
    """

    convs: tuple[eqx.nn.Conv2d, ...]
    head: eqx.nn.Linear

    def __init__(self, image_size: int, latent_dim: int, width: int, *, key: PRNGKeyArray):
        k1, k2, k3, k4 = jr.split(key, 4)
        self.convs = (
            eqx.nn.Conv2d(3, width, 4, stride=2, padding=1, key=k1),
            eqx.nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, key=k2),
            eqx.nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1, key=k3),
        )
        self.head = eqx.nn.Linear(4 * width * (image_size // 8) ** 2, 2 * latent_dim, key=k4)

    def __call__(self, x: Float[Array, "c s s"]) -> tuple[Float[Array, " d"], Float[Array, " d"]]:
        h = 2.0 * x - 1.0
        for conv in self.convs:
            h = jax.nn.silu(conv(h))
        mean, log_var = jnp.split(self.head(h.reshape(-1)), 2)
        return mean, log_var


class ConvDecoder(eqx.Module):
    """`z` -> location and log-scale of the discretised logistic of every pixel, `(3, s, s)`.

    A linear layer to `(4 width, s/8, s/8)` and three stride-2 transposed convolutions.
    """

    head: eqx.nn.Linear
    convs: tuple[eqx.nn.ConvTranspose2d, ...]
    width: int = eqx.field(static=True)
    image_size: int = eqx.field(static=True)

    def __init__(self, image_size: int, latent_dim: int, width: int, *, key: PRNGKeyArray):
        k1, k2, k3, k4 = jr.split(key, 4)
        self.width, self.image_size = width, image_size
        self.head = eqx.nn.Linear(latent_dim, 4 * width * (image_size // 8) ** 2, key=k1)
        self.convs = (
            eqx.nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1, key=k2),
            eqx.nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, key=k3),
            eqx.nn.ConvTranspose2d(width, 6, 4, stride=2, padding=1, key=k4),
        )

    def __call__(
        self, z: Float[Array, " d"]
    ) -> tuple[Float[Array, "c s s"], Float[Array, "c s s"]]:
        s = self.image_size // 8
        h = jax.nn.silu(self.head(z)).reshape(4 * self.width, s, s)
        for conv in self.convs[:-1]:
            h = jax.nn.silu(conv(h))
        raw_loc, log_scale = jnp.split(self.convs[-1](h), 2)
        return jax.nn.sigmoid(raw_loc), log_scale


class VAE(eqx.Module):
    """A convolutional VAE for `(3, s, s)` images in `[0, 1]` with a `latent_dim` latent."""

    encoder: ConvEncoder
    decoder: ConvDecoder
    latent_dim: int = eqx.field(static=True)

    def __init__(self, image_size: int, latent_dim: int, width: int = 32, *, key: PRNGKeyArray):
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        k_enc, k_dec = jr.split(key)
        self.encoder = ConvEncoder(image_size, latent_dim, width, key=k_enc)
        self.decoder = ConvDecoder(image_size, latent_dim, width, key=k_dec)
        self.latent_dim = latent_dim

    def elbo(
        self,
        x: Float[Array, "c s s"],
        key: PRNGKeyArray,
        *,
        beta: float | Array = 1.0,
        samples: int = 1,
    ) -> ELBO:
        """The (beta-)ELBO of one 8-bit image `x` (`(3, s, s)`, levels `k / 255`), in nats."""
        mean, log_var = self.encoder(x)

        def log_likelihood(z):
            return discretised_logistic_log_prob(x, *self.decoder(z))

        return elbo(log_likelihood, mean, log_var, key, beta=beta, samples=samples)
