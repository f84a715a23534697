"""Bits per dimension of 8-bit images, and the two baselines every model is compared with.

A model of continuous values `y` in `[0, 1]^D` becomes a model of 8-bit images by **uniform
dequantisation** (Theis et al. 2016): an image with integer levels `k` in `0..255` is spread
over its bin, `y = (k + u) / 256` with `u ~ U[0, 1)^D`. For any density `p` on `[0, 1]^D`,

$$
\\log P(k) \\ge \\mathbb E_u \\left[ \\log p\\left(\\tfrac{k + u}{256}\\right) \\right]
    - D \\log 256,
$$

so `-(log p(y) - D log 256) / (D log 2)` estimates (from above) the bits per dimension a lossless
code built from the model would spend. All numbers in Part IV are in these units, on the same
held-out galaxies with the same dequantisation noise.

Baselines, fitted in closed form on training images:
- `IndependentGaussian`: one Gaussian per pixel and channel (mean and variance of the data).
- `PPCA`: probabilistic PCA (Tipping & Bishop 1999) with `k` components, a Gaussian with
  covariance `W W^T + sigma^2 I`.
"""

import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from tutorial_lib.generative.classify import PCA

__all__ = [
    "DEQUANTISATION_SEED",
    "PPCA",
    "IndependentGaussian",
    "bits_per_dim",
    "check_images",
    "dequantise",
    "to_levels",
]

DEQUANTISATION_SEED = 1234  # the fixed noise that makes reported bits/dim reproducible


def check_images(images: object, *, image_size: int | None = None, eight_bit: bool = False):
    """`images` as a float32 array `(n, s, s, 3)` in `[0, 1]`, or a `ValueError` saying what is
    wrong. With `eight_bit`, the values must be 8-bit levels `k / 255` (as loaded images are)."""
    x = np.asarray(images, dtype=np.float32)
    expected = f"(n, {image_size or 's'}, {image_size or 's'}, 3)"
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2]:
        hint = " (add a batch axis with images[None])" if x.ndim == 3 else ""
        raise ValueError(
            f"expected RGB images of shape {expected}, channels last, got {x.shape}{hint}"
        )
    if image_size is not None and x.shape[1] != image_size:
        raise ValueError(
            f"this model works on {image_size}x{image_size} images, got {x.shape[1]}x"
            f"{x.shape[2]}; load them with load_galaxies({image_size}, ...)"
        )
    if x.shape[0] == 0:
        raise ValueError("got no images (n = 0)")
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(
            f"image values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]; rescale [0, 255] images "
            "with images / 255 and [-1, 1] ones with (x + 1) / 2"
        )
    if eight_bit:
        off = float(np.max(np.abs(x * 255 - np.round(x * 255))))
        if off > 0.01:
            raise ValueError(
                "bits/dim are defined for 8-bit images (values k / 255, k = 0..255); these are "
                f"up to {off:.2f} levels away from one. Quantise them first: "
                "np.round(images * 255) / 255"
            )
    return x


def to_levels(images: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """Images in `[0, 1]` -> their integer 8-bit levels `k` (as floats)."""
    return jnp.round(jnp.asarray(images) * 255.0)


def dequantise(key: PRNGKeyArray, images: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """`(k + u) / 256` with `u ~ U[0, 1)`: 8-bit images spread uniformly over their bins."""
    levels = to_levels(images)
    return (levels + jr.uniform(key, levels.shape)) / 256.0


def bits_per_dim(log_prob: Float[ArrayLike, "*n"], dims: int) -> Float[Array, "*n"]:
    """`log p(y)` (nats, density on `[0, 1]^dims` of dequantised `y`) -> bits per dimension
    of the 8-bit image."""
    return -(jnp.asarray(log_prob) - dims * math.log(256.0)) / (dims * math.log(2.0))


def _flat(y) -> np.ndarray:
    y = np.asarray(y, np.float64)
    return y.reshape(len(y), -1)


class IndependentGaussian:
    """A Gaussian per dimension, fitted to training data `(n, ...)` (dequantised values)."""

    def __init__(self, train: Float[ArrayLike, "n ..."]):
        x = _flat(train)
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6

    def log_prob(self, y: Float[ArrayLike, "m ..."]) -> Float[np.ndarray, " m"]:
        z = (_flat(y) - self.mean) / self.std
        return np.sum(-0.5 * z**2 - np.log(self.std) - 0.5 * math.log(2 * math.pi), axis=1)


class PPCA:
    """Probabilistic PCA with `components` directions (maximum likelihood, Tipping & Bishop
    1999): `N(mean, W W^T + sigma^2 I)`, `sigma^2` the mean variance of the discarded
    directions. Densities use the Woodbury identity, so `D` can be large."""

    def __init__(self, train: Float[ArrayLike, "n ..."], components: int):
        x = _flat(train)
        n, d = x.shape
        if not 1 <= components < min(n, d):
            raise ValueError(f"components must lie in [1, {min(n, d) - 1}], got {components}")
        pca = PCA(x, components)
        self.mean, self.basis = pca.mean, pca.components  # basis: (k, d), orthonormal rows
        self.variances = pca.variances[:components]  # the model's variance along each direction
        # The discarded directions share one variance: their mean (the data's total variance
        # there, divided by how many there are, n - 1 <= d of them with nonzero variance).
        self.sigma2 = float(pca.variances[components:].sum()) / (d - components)
        self.components = components

    def log_prob(self, y: Float[ArrayLike, "m ..."]) -> Float[np.ndarray, " m"]:
        r = _flat(y) - self.mean
        d = r.shape[1]
        proj = r @ self.basis.T  # coordinates along the kept directions
        # C = V diag(var) V^T + sigma2 (I - V V^T): eigenvalues var (k of them) and sigma2.
        maha = np.sum(proj**2 / self.variances, 1) + (np.sum(r**2, 1) - np.sum(proj**2, 1)) / (
            self.sigma2
        )
        logdet = np.sum(np.log(self.variances)) + (d - self.components) * np.log(self.sigma2)
        return -0.5 * (maha + logdet + d * math.log(2 * math.pi))
