"""A U-Net noise predictor eps(x_t, t) in Equinox, after Ho et al. (2020).

Residual blocks with group normalisation and a sinusoidal time embedding added to every block,
self-attention at the low resolutions, skip connections from each encoder block to the
decoder. One image at a time, channels first `(C, H, W)`; batch with `jax.vmap`.

Inside, the network works channels-last, `(H, W, C)`: XLA's CPU convolution kernels want that
layout, and a channels-first network pays for a transpose before and after every convolution,
forwards and backwards (measured on the Benchmarks page). The blocks keep a channels-first
`__call__` for readability and tests, and a channels-last `hwc` method that `UNet` uses.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = [
    "ResBlock",
    "SelfAttention",
    "UNet",
    "Upsample",
    "conv",
    "conv_hwc",
    "count_parameters",
    "group_norm_hwc",
    "sinusoidal_embedding",
]


def sinusoidal_embedding(
    t: Float[Array, ""], dim: int, scale: float = 1000.0
) -> Float[Array, " dim"]:
    """Transformer-style features of a scalar time t in [0, 1] (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / (half - 1))
    angles = scale * t * freqs
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)])


def conv_hwc(layer: eqx.nn.Conv2d, x: Float[Array, "h w c"]) -> Float[Array, "h2 w2 c2"]:
    """Apply an `eqx.nn.Conv2d` (weights stored OIHW) to a channels-last image `(H, W, C)`.

    XLA:CPU's convolutions work channels-last; inside a `lax.scan` or `while_loop` (every
    sampler, every ODE solver) channels-first convolutions can run up to a hundred times slower
    (jax-ml/jax#12868).
    """
    rhs = jnp.transpose(layer.weight, (2, 3, 1, 0))
    out = jax.lax.conv_general_dilated(
        x[None],
        rhs,
        window_strides=layer.stride,
        padding=layer.padding,
        rhs_dilation=layer.dilation,
        feature_group_count=layer.groups,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )[0]
    return out if layer.bias is None else out + layer.bias.reshape(-1)


def conv(layer: eqx.nn.Conv2d, x: Float[Array, "c h w"]) -> Float[Array, "c2 h2 w2"]:
    """`conv_hwc` on a channels-first image: the same weights and result as `layer(x)`."""
    return jnp.transpose(conv_hwc(layer, jnp.transpose(x, (1, 2, 0))), (2, 0, 1))


def group_norm_hwc(norm: eqx.nn.GroupNorm, x: Float[Array, "h w c"]) -> Float[Array, "h w c"]:
    """`norm(x)` of an `eqx.nn.GroupNorm` on a channels-last image: each group of `c / groups`
    channels normalised over its channels and all pixels, then scaled and shifted per channel."""
    h, w, c = x.shape
    y = x.reshape(h, w, norm.groups, c // norm.groups)
    mean = jnp.mean(y, axis=(0, 1, 3), keepdims=True)
    variance = jnp.maximum(0.0, jnp.var(y, axis=(0, 1, 3), keepdims=True))
    out = ((y - mean) * jax.lax.rsqrt(variance + norm.eps)).reshape(h, w, c)
    return out * norm.weight + norm.bias if norm.channelwise_affine else out


def _chw(fn, x):
    """Run a channels-last function on a channels-first image."""
    return jnp.transpose(fn(jnp.transpose(x, (1, 2, 0))), (2, 0, 1))


def _dropout(x, rate: float, key):
    if key is None or rate == 0.0:
        return x
    keep = jr.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class ResBlock(eqx.Module):
    """Two 3x3 convolutions, each after group normalisation and SiLU, with the projected time
    embedding added in between, dropout before the second, and a residual connection (a 1x1
    convolution when the channel count changes). Starts as the identity."""

    norm1: eqx.nn.GroupNorm
    conv1: eqx.nn.Conv2d
    time_proj: eqx.nn.Linear
    norm2: eqx.nn.GroupNorm
    conv2: eqx.nn.Conv2d
    skip: eqx.nn.Conv2d | None
    dropout: float = eqx.field(static=True)

    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int, dropout: float, *, key):
        k1, k2, k3, k4 = jr.split(key, 4)
        self.norm1 = eqx.nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = eqx.nn.Conv2d(c_in, c_out, 3, padding=1, key=k1)
        self.time_proj = eqx.nn.Linear(t_dim, c_out, key=k2)
        self.norm2 = eqx.nn.GroupNorm(min(groups, c_out), c_out)
        conv2 = eqx.nn.Conv2d(c_out, c_out, 3, padding=1, key=k3)
        # Start each block as the identity: a common trick that steadies early training.
        self.conv2 = eqx.tree_at(lambda c: c.weight, conv2, jnp.zeros_like(conv2.weight))
        self.skip = eqx.nn.Conv2d(c_in, c_out, 1, key=k4) if c_in != c_out else None
        self.dropout = dropout

    def __call__(self, x: Float[Array, "c h w"], t_emb: Float[Array, " t"], *, key=None):
        return _chw(lambda x: self.hwc(x, t_emb, key=key), x)

    def hwc(self, x: Float[Array, "h w c"], t_emb: Float[Array, " t"], *, key=None):
        """The block on a channels-last image."""
        h = conv_hwc(self.conv1, jax.nn.silu(group_norm_hwc(self.norm1, x)))
        h = h + self.time_proj(jax.nn.silu(t_emb))
        h = _dropout(jax.nn.silu(group_norm_hwc(self.norm2, h)), self.dropout, key)
        h = conv_hwc(self.conv2, h)
        return h + (x if self.skip is None else conv_hwc(self.skip, x))


class SelfAttention(eqx.Module):
    """Multi-head self-attention over the pixels of one feature map (each pixel a token), after
    group normalisation, with a residual connection. Starts as the identity."""

    norm: eqx.nn.GroupNorm
    attention: eqx.nn.MultiheadAttention

    def __init__(self, channels: int, heads: int, groups: int, *, key):
        self.norm = eqx.nn.GroupNorm(min(groups, channels), channels)
        attn = eqx.nn.MultiheadAttention(heads, channels, key=key)
        self.attention = eqx.tree_at(
            lambda a: a.output_proj.weight, attn, jnp.zeros_like(attn.output_proj.weight)
        )

    def __call__(self, x: Float[Array, "c h w"]) -> Float[Array, "c h w"]:
        return _chw(self.hwc, x)

    def hwc(self, x: Float[Array, "h w c"]) -> Float[Array, "h w c"]:
        """Attention on a channels-last image: its pixels, in row-major order, are the tokens."""
        h, w, c = x.shape
        tokens = group_norm_hwc(self.norm, x).reshape(h * w, c)
        return x + self.attention(tokens, tokens, tokens).reshape(h, w, c)


class Upsample(eqx.Module):
    """Nearest-neighbour upsampling by 2, then a 3x3 convolution."""

    conv: eqx.nn.Conv2d

    def __init__(self, channels: int, *, key):
        self.conv = eqx.nn.Conv2d(channels, channels, 3, padding=1, key=key)

    def __call__(self, x: Float[Array, "c h w"]) -> Float[Array, "c 2*h 2*w"]:
        return _chw(self.hwc, x)

    def hwc(self, x: Float[Array, "h w c"]) -> Float[Array, "2*h 2*w c"]:
        """Nearest-neighbour upsampling and a convolution, channels-last."""
        return conv_hwc(self.conv, jnp.repeat(jnp.repeat(x, 2, axis=0), 2, axis=1))


class UNet(eqx.Module):
    """eps_theta(x, t) for images `(channels, size, size)` and times t in [0, 1].

    `channel_mults` gives the width of each resolution level (times `base_channels`); every
    level but the last halves the resolution. Self-attention runs at the resolutions listed in
    `attention_resolutions`.
    """

    time_mlp: list[eqx.nn.Linear]
    stem: eqx.nn.Conv2d
    down_blocks: list[list[ResBlock]]
    down_attn: list[list[SelfAttention | None]]
    downsamples: list[eqx.nn.Conv2d | None]
    mid: list[eqx.Module]
    up_blocks: list[list[ResBlock]]
    up_attn: list[list[SelfAttention | None]]
    upsamples: list[Upsample | None]
    out_norm: eqx.nn.GroupNorm
    out_conv: eqx.nn.Conv2d
    image_size: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    base_channels: int = eqx.field(static=True)

    def __init__(
        self,
        image_size: int,
        channels: int = 3,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2, 2, 4),
        num_res_blocks: int = 2,
        attention_resolutions: tuple[int, ...] = (16, 8),
        heads: int = 4,
        groups: int = 8,
        dropout: float = 0.1,
        *,
        key: PRNGKeyArray,
    ):
        if image_size % 2 ** (len(channel_mults) - 1):
            raise ValueError(
                f"image_size={image_size} must be divisible by 2**{len(channel_mults) - 1} "
                f"for {len(channel_mults)} resolution levels"
            )
        self.image_size, self.channels, self.base_channels = image_size, channels, base_channels
        keys = iter(jr.split(key, 256))
        t_dim = 4 * base_channels
        self.time_mlp = [
            eqx.nn.Linear(base_channels, t_dim, key=next(keys)),
            eqx.nn.Linear(t_dim, t_dim, key=next(keys)),
        ]
        self.stem = eqx.nn.Conv2d(channels, base_channels, 3, padding=1, key=next(keys))

        def block(c_in, c_out):
            return ResBlock(c_in, c_out, t_dim, groups, dropout, key=next(keys))

        def attn(c, res):
            return (
                SelfAttention(c, heads, groups, key=next(keys))
                if res in attention_resolutions
                else None
            )

        widths = [base_channels * m for m in channel_mults]
        skips = [base_channels]
        c, res = base_channels, image_size
        self.down_blocks, self.down_attn, self.downsamples = [], [], []
        for level, width in enumerate(widths):
            blocks, attns = [], []
            for _ in range(num_res_blocks):
                blocks.append(block(c, width))
                attns.append(attn(width, res))
                c = width
                skips.append(c)
            last = level == len(widths) - 1
            self.down_blocks.append(blocks)
            self.down_attn.append(attns)
            self.downsamples.append(
                None if last else eqx.nn.Conv2d(c, c, 3, stride=2, padding=1, key=next(keys))
            )
            if not last:
                skips.append(c)
                res //= 2
        self.mid = [block(c, c), SelfAttention(c, heads, groups, key=next(keys)), block(c, c)]
        self.up_blocks, self.up_attn, self.upsamples = [], [], []
        for level, width in reversed(list(enumerate(widths))):
            blocks, attns = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(block(c + skips.pop(), width))
                attns.append(attn(width, res))
                c = width
            self.up_blocks.append(blocks)
            self.up_attn.append(attns)
            self.upsamples.append(Upsample(c, key=next(keys)) if level > 0 else None)
            if level > 0:
                res *= 2
        self.out_norm = eqx.nn.GroupNorm(min(groups, c), c)
        out_conv = eqx.nn.Conv2d(c, channels, 3, padding=1, key=next(keys))
        self.out_conv = eqx.tree_at(lambda m: m.weight, out_conv, jnp.zeros_like(out_conv.weight))

    @property
    def embedding_dim(self) -> int:
        """The width of the time embedding (and of `cond`)."""
        return 4 * self.base_channels

    def __call__(
        self,
        x: Float[Array, "..."],
        t: Float[Array, ""],
        *,
        cond: Float[Array, " e"] | None = None,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "c h w"]:
        """Predicted noise for one image `x` of shape `(channels, image_size, image_size)`
        (another shape raises a `ValueError`; `jax.vmap` it for a batch). `key` switches
        dropout on (training); leave it None to sample. `cond`, a vector of `embedding_dim`,
        is added to the time embedding: how a class label enters (Dhariwal and Nichol 2021)."""
        if x.shape != (self.channels, self.image_size, self.image_size):
            raise ValueError(
                "UNet expects one image of shape "
                f"{(self.channels, self.image_size, self.image_size)} "
                f"(channels first), got {x.shape}; use jax.vmap for a batch"
            )
        n_blocks = sum(len(b) for b in self.down_blocks + self.up_blocks) + 2
        keys = list(jr.split(key, n_blocks)) if key is not None else [None] * n_blocks
        emb = self.time_mlp[1](
            jax.nn.silu(self.time_mlp[0](sinusoidal_embedding(t, self.base_channels)))
        )
        if cond is not None:
            emb = emb + cond

        h = conv_hwc(self.stem, jnp.transpose(x, (1, 2, 0)))  # channels-last from here on
        hs = [h]
        for blocks, attns, down in zip(
            self.down_blocks, self.down_attn, self.downsamples, strict=True
        ):
            for blk, att in zip(blocks, attns, strict=True):
                h = blk.hwc(h, emb, key=keys.pop())
                h = h if att is None else att.hwc(h)
                hs.append(h)
            if down is not None:
                h = conv_hwc(down, h)
                hs.append(h)
        h = self.mid[0].hwc(h, emb, key=keys.pop())
        h = self.mid[1].hwc(h)
        h = self.mid[2].hwc(h, emb, key=keys.pop())
        for blocks, attns, up in zip(self.up_blocks, self.up_attn, self.upsamples, strict=True):
            for blk, att in zip(blocks, attns, strict=True):
                h = blk.hwc(jnp.concatenate([h, hs.pop()], axis=-1), emb, key=keys.pop())
                h = h if att is None else att.hwc(h)
            if up is not None:
                h = up.hwc(h)
        h = conv_hwc(self.out_conv, jax.nn.silu(group_norm_hwc(self.out_norm, h)))
        return jnp.transpose(h, (2, 0, 1))


def count_parameters(model: eqx.Module) -> int:
    """The number of trainable numbers in `model`: the total element count of its
    floating-point (inexact) array leaves, weights and biases alike. Integer and boolean
    arrays and non-array fields (sizes, flags, activations) are not counted."""
    return sum(x.size for x in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
