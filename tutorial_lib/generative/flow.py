"""A multi-scale affine coupling flow for images (RealNVP; Dinh et al. 2017), with Glow's actnorm
(Kingma & Dhariwal 2018).

A normalizing flow is an invertible map `f` from data `x` to a latent `z = f(x)` with a simple
density; the change of variables gives the exact density of the data,

$$
\\log p(x) = \\log p_Z(f(x)) + \\log \\left| \\det \\frac{\\partial f}{\\partial x} \\right|.
$$

Every layer here maps ONE image `(c, h, w)` (channels first, as `eqx.nn.Conv2d` takes it) to
`(y, log_det)` with `forward` and back with `inverse`; batches are `jax.vmap`-ed.

- `ActNorm`: a per-channel affine map, initialised from data (`initialise_actnorm`).
- `AffineCoupling`: half of the entries (a checkerboard or a channel mask) pass unchanged and
  set the scale and shift of the other half, so the inverse is exact and the Jacobian is
  triangular: its log-determinant is the sum of the log-scales.
- `Squeeze`: `(c, h, w) -> (4c, h/2, w/2)`, trading space for channels.
- `Split`: half of the channels leave the flow early, to the Gaussian base (the multi-scale
  architecture: they are modelled at the coarser resolution they were split at).
- `ImageFlow`: the composition, `log_prob` of images in `(0, 1)` (after the logit transform
  of `logit_preprocess`) and `sample`.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "CouplingNet",
    "FlowLayer",
    "ImageFlow",
    "Split",
    "Squeeze",
    "build_image_flow",
    "channel_mask",
    "checkerboard_mask",
    "initialise_actnorm",
    "logit_postprocess",
    "logit_preprocess",
    "standard_normal_log_prob",
]


def standard_normal_log_prob(z: Float[Array, "..."]) -> Float[Array, ""]:
    """`log N(z; 0, I)`, summed over all entries."""
    return -0.5 * jnp.sum(z**2) - 0.5 * z.size * math.log(2 * math.pi)


# --- masks -------------------------------------------------------------------------------------


def checkerboard_mask(shape: tuple[int, int, int], parity: int) -> Float[Array, "c h w"]:
    """1 where `(i + j + parity)` is even: the entries a checkerboard coupling keeps."""
    c, h, w = shape
    board = (jnp.arange(h)[:, None] + jnp.arange(w)[None, :] + parity) % 2 == 0
    return jnp.broadcast_to(board, (c, h, w)).astype(jnp.float32)


def channel_mask(shape: tuple[int, int, int], parity: int) -> Float[Array, "c h w"]:
    """1 on the first half of the channels (`parity=0`) or on the second (`parity=1`)."""
    c, h, w = shape
    first = jnp.arange(c) < c // 2
    keep = first if parity == 0 else ~first
    return jnp.broadcast_to(keep[:, None, None], (c, h, w)).astype(jnp.float32)


# --- layers ------------------------------------------------------------------------------------


class FlowLayer(eqx.Module):
    """An invertible map of one image: `forward(x) -> (y, log|det dy/dx|)`, `inverse(y) -> x`."""

    @abc.abstractmethod
    def forward(self, x: Float[Array, "c h w"]) -> tuple[Float[Array, "c h w"], Float[Array, ""]]:
        """The layer applied to one image, and the log-determinant of its Jacobian."""

    @abc.abstractmethod
    def inverse(self, y: Float[Array, "c h w"]) -> Float[Array, "c h w"]:
        """The layer's exact inverse."""


class ActNorm(FlowLayer):
    """`y = (x + bias) * exp(log_scale)` per channel; log-det `h * w * sum(log_scale)`.

    Starts as the identity; `initialise_actnorm` sets it so that a batch of data leaves it
    with zero mean and unit variance per channel (Kingma & Dhariwal 2018).
    """

    bias: Float[Array, " c"]
    log_scale: Float[Array, " c"]

    def __init__(self, channels: int):
        self.bias = jnp.zeros(channels)
        self.log_scale = jnp.zeros(channels)

    def forward(self, x: Float[Array, "c h w"]) -> tuple[Float[Array, "c h w"], Float[Array, ""]]:
        y = (x + self.bias[:, None, None]) * jnp.exp(self.log_scale)[:, None, None]
        return y, x.shape[1] * x.shape[2] * jnp.sum(self.log_scale)

    def inverse(self, y: Float[Array, "c h w"]) -> Float[Array, "c h w"]:
        return y * jnp.exp(-self.log_scale)[:, None, None] - self.bias[:, None, None]


class CouplingNet(eqx.Module):
    """The network of a coupling layer: masked image -> (log-scale, shift), each `(c, h, w)`.

    Three convolutions (3x3, 1x1, 3x3); the last starts at zero, so that a new coupling layer
    is the identity and a deep flow starts stable.
    """

    layers: tuple[eqx.nn.Conv2d, ...]
    scale: Float[Array, " c"]

    def __init__(self, channels: int, hidden: int, *, key: PRNGKeyArray):
        k1, k2, k3 = jr.split(key, 3)
        last = eqx.nn.Conv2d(hidden, 2 * channels, 3, padding=1, key=k3)
        last = eqx.tree_at(lambda c: (c.weight, c.bias), last, replace_fn=jnp.zeros_like)
        # The mask is an extra input channel, so the network knows which entries it sees.
        self.layers = (
            eqx.nn.Conv2d(channels + 1, hidden, 3, padding=1, key=k1),
            eqx.nn.Conv2d(hidden, hidden, 1, key=k2),
            last,
        )
        self.scale = jnp.ones(channels)

    def __call__(
        self, x: Float[Array, "c h w"], mask: Float[Array, "c h w"]
    ) -> tuple[Float[Array, "c h w"], Float[Array, "c h w"]]:
        h = jnp.concatenate([x * mask, mask[:1]], axis=0)
        h = jax.nn.relu(self.layers[0](h))
        h = jax.nn.relu(self.layers[1](h))
        raw_s, t = jnp.split(self.layers[2](h), 2, axis=0)
        # tanh keeps the log-scales bounded, as in RealNVP, with a learned per-channel range.
        return self.scale[:, None, None] * jnp.tanh(raw_s), t


class AffineCoupling(FlowLayer):
    """`y = m * x + (1 - m) * (x * exp(s(m x)) + t(m x))` for a fixed binary mask `m`.

    The kept half `m x` passes unchanged, so `s` and `t` can be recomputed from `y` and the
    inverse is exact: `x = m y + (1 - m) (y - t) exp(-s)`. The log-determinant is
    `sum((1 - m) s)`. `mask` is `"checkerboard"` or `"channel"`, `parity` 0 or 1 picks which
    half is kept.
    """

    net: CouplingNet
    mask: str = eqx.field(static=True)
    parity: int = eqx.field(static=True)

    def __init__(self, channels: int, hidden: int, mask: str, parity: int, *, key: PRNGKeyArray):
        if mask not in ("checkerboard", "channel"):
            raise ValueError(f"mask must be 'checkerboard' or 'channel', got {mask!r}")
        if parity not in (0, 1):
            raise ValueError(f"parity must be 0 or 1, got {parity!r}")
        if mask == "channel" and channels < 2:
            raise ValueError("a channel mask needs at least 2 channels")
        self.net = CouplingNet(channels, hidden, key=key)
        self.mask = mask
        self.parity = parity

    def _mask(self, shape) -> Float[Array, "c h w"]:
        make = checkerboard_mask if self.mask == "checkerboard" else channel_mask
        return make(tuple(shape), self.parity)

    def forward(self, x: Float[Array, "c h w"]) -> tuple[Float[Array, "c h w"], Float[Array, ""]]:
        m = self._mask(x.shape)
        s, t = self.net(x, m)
        s = (1 - m) * s
        y = m * x + (1 - m) * (x * jnp.exp(s) + t)
        return y, jnp.sum(s)

    def inverse(self, y: Float[Array, "c h w"]) -> Float[Array, "c h w"]:
        m = self._mask(y.shape)
        s, t = self.net(y, m)
        return m * y + (1 - m) * (y - t) * jnp.exp(-(1 - m) * s)


class Squeeze(FlowLayer):
    """`(c, h, w) -> (4c, h/2, w/2)`: each 2x2 block becomes 4 channels (volume-preserving)."""

    def forward(
        self, x: Float[Array, "c h w"]
    ) -> tuple[Float[Array, "4*c h//2 w//2"], Float[Array, ""]]:
        c, h, w = x.shape
        y = x.reshape(c, h // 2, 2, w // 2, 2).transpose(0, 2, 4, 1, 3)
        return y.reshape(4 * c, h // 2, w // 2), jnp.zeros(())

    def inverse(self, y: Float[Array, "c4 h2 w2"]) -> Float[Array, "c4//4 2*h2 2*w2"]:
        c4, h2, w2 = y.shape
        x = y.reshape(c4 // 4, 2, 2, h2, w2).transpose(0, 3, 1, 4, 2)
        return x.reshape(c4 // 4, 2 * h2, 2 * w2)


class Split(eqx.Module):
    """Marks where half of the channels leave the flow for the Gaussian base (see `ImageFlow`)."""


# --- the flow ----------------------------------------------------------------------------------


def logit_preprocess(
    y: Float[Array, "c h w"], alpha: float
) -> tuple[Float[Array, "c h w"], Float[Array, ""]]:
    """`(0, 1)` -> the real line: `logit(alpha + (1 - 2 alpha) y)`, and its log-det.

    Dinh et al. (2017): the flow then never has to model the hard edges of `[0, 1]`.
    """
    s = alpha + (1 - 2 * alpha) * y
    log_det = jnp.sum(math.log(1 - 2 * alpha) - jnp.log(s) - jnp.log1p(-s))
    return jnp.log(s) - jnp.log1p(-s), log_det


def logit_postprocess(z: Float[Array, "c h w"], alpha: float) -> Float[Array, "c h w"]:
    """The inverse of `logit_preprocess`, clipped to `[0, 1]`."""
    return jnp.clip((jax.nn.sigmoid(z) - alpha) / (1 - 2 * alpha), 0.0, 1.0)


class ImageFlow(eqx.Module):
    """A multi-scale flow on images `(c, s, s)` with values in `(0, 1)`.

    `layers` run in order; at each `Split` the first half of the channels is set aside as
    latent and the rest continues. The base density of every latent part is `N(0, I)`.
    """

    layers: tuple[FlowLayer | Split, ...]
    image_shape: tuple[int, int, int] = eqx.field(static=True)
    alpha: float = eqx.field(static=True)

    def to_latent(self, y: Float[Array, "c h w"]) -> tuple[list[Array], Float[Array, ""]]:
        """`y` in `(0, 1)` -> the latent parts and the total log-det (preprocessing included)."""
        x, log_det = logit_preprocess(y, self.alpha)
        parts = []
        for layer in self.layers:
            if isinstance(layer, Split):
                out, x = jnp.split(x, 2, axis=0)
                parts.append(out)
            else:
                x, ld = layer.forward(x)
                log_det = log_det + ld
        parts.append(x)
        return parts, log_det

    def log_prob(self, y: Float[Array, "c h w"]) -> Float[Array, ""]:
        """The exact `log p(y)` of one image `y` in `(0, 1)` (a density on `(0, 1)^D`)."""
        parts, log_det = self.to_latent(y)
        return sum(standard_normal_log_prob(z) for z in parts) + log_det

    def latent_shapes(self) -> list[tuple[int, int, int]]:
        parts, _ = eqx.filter_eval_shape(self.to_latent, jnp.full(self.image_shape, 0.5))
        return [p.shape for p in parts]

    def from_latent(self, parts: list[Array]) -> Float[Array, "c h w"]:
        """The inverse of `to_latent` (without the log-det): latent parts -> image in `[0, 1]`."""
        parts = list(parts)
        x = parts.pop()
        for layer in reversed(self.layers):
            if isinstance(layer, Split):
                x = jnp.concatenate([parts.pop(), x], axis=0)
            else:
                x = layer.inverse(x)
        return logit_postprocess(x, self.alpha)

    def sample(self, key: PRNGKeyArray, temperature: float | Array = 1.0) -> Float[Array, "c h w"]:
        """One image: every latent part drawn from `N(0, temperature^2 I)`, then inverted."""
        shapes = self.latent_shapes()
        keys = jr.split(key, len(shapes))
        return self.from_latent(
            [temperature * jr.normal(k, s) for k, s in zip(keys, shapes, strict=True)]
        )


def build_image_flow(
    *,
    image_size: int,
    channels: int = 3,
    levels: int = 3,
    couplings: int = 3,
    final_couplings: int = 4,
    hidden: int = 64,
    alpha: float = 0.05,
    key: PRNGKeyArray,
) -> ImageFlow:
    """RealNVP's multi-scale architecture.

    Each of the first `levels - 1` levels: `couplings` checkerboard couplings, a squeeze,
    `couplings` channel couplings, then half of the channels split off. The last level:
    `final_couplings` checkerboard couplings. An `ActNorm` precedes every coupling; parities
    alternate so that every entry is transformed.
    """
    if image_size % 2 ** (levels - 1):
        raise ValueError(f"image_size {image_size} must be divisible by 2**(levels-1)")
    layers: list[FlowLayer | Split] = []
    c, s = channels, image_size
    keys = iter(jr.split(key, levels * 2 * couplings + final_couplings))

    def couple(kind, n):
        for i in range(n):
            layers.append(ActNorm(c))
            layers.append(AffineCoupling(c, hidden, kind, i % 2, key=next(keys)))

    for _ in range(levels - 1):
        couple("checkerboard", couplings)
        layers.append(Squeeze())
        c, s = 4 * c, s // 2
        couple("channel", couplings)
        layers.append(Split())
        c = c // 2
    couple("checkerboard", final_couplings)
    return ImageFlow(tuple(layers), (channels, image_size, image_size), alpha)


def initialise_actnorm(flow: ImageFlow, images: Float[Array, "n c h w"]) -> ImageFlow:
    """Data-dependent initialisation: each `ActNorm` normalises what reaches it from `images`
    (values in `(0, 1)`) to zero mean and unit variance per channel."""
    x, _ = jax.vmap(lambda y: logit_preprocess(y, flow.alpha))(images)
    layers = []
    for layer in flow.layers:
        if isinstance(layer, ActNorm):
            mean = jnp.mean(x, axis=(0, 2, 3))
            std = jnp.std(x, axis=(0, 2, 3))
            layer = eqx.tree_at(
                lambda a: (a.bias, a.log_scale), layer, (-mean, -jnp.log(std + 1e-6))
            )
        if isinstance(layer, Split):
            x = jnp.split(x, 2, axis=1)[1]
        else:
            x, _ = jax.vmap(layer.forward)(x)
        layers.append(layer)
    return eqx.tree_at(lambda f: f.layers, flow, tuple(layers))
