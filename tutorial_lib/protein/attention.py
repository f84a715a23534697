"""Attention and transformer encoder blocks from scratch: the parts of Part III's first chapter.

Each is a pure function or a small Equinox module that acts on ONE sequence (batch it with
`jax.vmap`):

- `Dense`: `x @ W.T + b` with PyTorch's `(out, in)` weight layout, the linear layer of every
  model in Part III (ESM2 loads its checkpoints into it);
- `scaled_dot_product_attention`: `softmax(q k^T / sqrt(d)) v` with an optional boolean mask
  (Vaswani et al. 2017);
- `apply_rotary`: rotary position embeddings (Su et al. 2024) in ESM's `rotate_half`
  convention;
- `MultiHeadAttention`: several attention heads on learned projections, optionally rotary;
- `sinusoidal_positions`: the fixed sinusoidal position code of Vaswani et al.;
- `EncoderBlock`: a pre-LayerNorm encoder block (Xiong et al. 2020).

`tutorial_lib.protein.esm2` builds ESM2 from `Dense` and `apply_rotary`; its own attention
layer is the same formula, arranged for speed and for checkpoint parity.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

__all__ = [
    "Dense",
    "EncoderBlock",
    "MultiHeadAttention",
    "apply_rotary",
    "scaled_dot_product_attention",
    "sinusoidal_positions",
]


class Dense(eqx.Module):
    """`x @ W.T + b` on every row; `W` is `(out, in)` as in PyTorch checkpoints."""

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"]

    def __init__(self, in_dim: int, out_dim: int, *, key: PRNGKeyArray, std: float = 0.02):
        # BERT/ESM initialisation: N(0, 0.02) weights, zero biases.
        self.weight = std * jr.normal(key, (out_dim, in_dim))
        self.bias = jnp.zeros(out_dim)

    def __call__(self, x: Float[Array, "L in"]) -> Float[Array, "L out"]:
        return x @ self.weight.T + self.bias


def scaled_dot_product_attention(
    q: Float[Array, "..."],
    k: Float[Array, "..."],
    v: Float[Array, "..."],
    mask: Bool[Array, "..."] | None = None,
) -> tuple[Float[Array, "Lq dv"], Float[Array, "Lq Lk"]]:
    """Attention of every query over the keys: `softmax(q k^T / sqrt(d)) v`.

    `q` is `(Lq, d)`, `k` `(Lk, d)` and `v` `(Lk, dv)`, for one sequence and one head; other
    shapes raise a `ValueError` that says what does not fit (so the annotations leave the
    shapes to that check).

    `mask` says which keys a query may look at (`True` = visible): shape `(Lk,)` for the same
    keys for every query (e.g. padding), or `(Lq, Lk)`. Hidden keys get exactly zero weight; a
    query that sees no key at all gets all-zero weights and a zero output (not NaN). Returns
    the outputs and the attention weights, whose visible entries in each row sum to one.
    """
    if q.ndim != 2 or k.ndim != 2 or v.ndim != 2:
        raise ValueError(
            f"q, k, v must be 2-D (length, dim) arrays for ONE sequence and ONE head, got "
            f"shapes {q.shape}, {k.shape}, {v.shape}; use jax.vmap for heads or batches"
        )
    if q.shape[1] != k.shape[1]:
        raise ValueError(
            f"queries have dimension {q.shape[1]} but keys {k.shape[1]}: the dot product "
            "q . k needs them equal"
        )
    if k.shape[0] != v.shape[0]:
        raise ValueError(f"{k.shape[0]} keys but {v.shape[0]} values: they come in pairs")
    scores = q @ k.T / jnp.sqrt(q.shape[1]).astype(q.dtype)
    if mask is None:
        weights = jax.nn.softmax(scores, axis=-1)
    else:
        if mask.shape not in (scores.shape, scores.shape[1:]):
            raise ValueError(
                f"mask has shape {mask.shape}; expected {scores.shape[1:]} (one flag per key) "
                f"or {scores.shape} (one per query-key pair)"
            )
        mask = jnp.broadcast_to(mask, scores.shape)
        # A finite floor, not -inf, so a fully hidden row gives zeros instead of NaN.
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
        weights = jnp.where(mask, jax.nn.softmax(scores, axis=-1), 0.0)
    return weights @ v, weights


def _rotate_half(x: Float[Array, "... d"]) -> Float[Array, "... d"]:
    x1, x2 = jnp.split(x, 2, axis=-1)
    return jnp.concatenate([-x2, x1], axis=-1)


def _rotary_tables(length: int, d: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    # NumPy at trace time: the tables are compile-time constants, not sines and cosines that
    # XLA would otherwise recompute in every layer of every call.
    inv_freq = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float32) / np.float32(d))
    freqs = np.arange(length, dtype=np.float32)[:, None] * inv_freq
    angles = np.concatenate([freqs, freqs], axis=-1)[:, None, :]
    return np.cos(angles), np.sin(angles)


def apply_rotary(x: Float[Array, "L H d"], theta: float = 10000.0) -> Float[Array, "L H d"]:
    """Rotary position embedding of per-head vectors at positions 0..L-1 (ESM's convention)."""
    length, _, d = x.shape
    cos, sin = _rotary_tables(length, d, theta)
    return x * cos.astype(x.dtype) + _rotate_half(x) * sin.astype(x.dtype)


class MultiHeadAttention(eqx.Module):
    """`num_heads` attention heads on learned projections of one sequence, then a mixing layer.

    Each head sees `dim // num_heads` of the projected features. With `rotary=True` queries and
    keys are rotated by their position (rotary embeddings) before the dot product, so the
    scores depend on the relative offset of two tokens; otherwise the layer is blind to order
    and positions must be added to its input.
    """

    query: Dense
    key: Dense
    value: Dense
    output: Dense
    num_heads: int = eqx.field(static=True)
    rotary: bool = eqx.field(static=True)

    def __init__(self, dim: int, num_heads: int, *, rotary: bool = False, key: PRNGKeyArray):
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"dim={dim} must be a positive multiple of num_heads={num_heads}")
        if rotary and (dim // num_heads) % 2:
            raise ValueError(
                f"rotary embeddings rotate pairs of features: the head dimension "
                f"{dim // num_heads} (dim / num_heads) must be even"
            )
        kq, kk, kv, ko = jr.split(key, 4)
        # LeCun-normal weights (std 1/sqrt(dim)): a small model then leaves the uniform-attention
        # start within a few dozen steps (BERT's smaller 0.02 suits long training runs).
        std = dim**-0.5
        self.query = Dense(dim, dim, key=kq, std=std)
        self.key = Dense(dim, dim, key=kk, std=std)
        self.value = Dense(dim, dim, key=kv, std=std)
        self.output = Dense(dim, dim, key=ko, std=std)
        self.num_heads = num_heads
        self.rotary = rotary

    def __call__(
        self, x: Float[Array, "L D"], mask: Bool[Array, " L"] | Bool[Array, "L L"] | None = None
    ) -> tuple[Float[Array, "L D"], Float[Array, "H L L"]]:
        if x.ndim != 2 or x.shape[1] != self.query.weight.shape[1]:
            raise ValueError(
                f"expected one sequence of shape (L, {self.query.weight.shape[1]}), got "
                f"{x.shape}; use jax.vmap for a batch"
            )
        length, dim = x.shape
        heads = (length, self.num_heads, dim // self.num_heads)
        q, k, v = (self.query(x).reshape(heads), self.key(x).reshape(heads), self.value(x))
        if self.rotary:
            q, k = apply_rotary(q), apply_rotary(k)
        # One head is one call of the single-head function: vmap over the head axis.
        per_head = jax.vmap(scaled_dot_product_attention, in_axes=(1, 1, 1, None), out_axes=(1, 0))
        out, weights = per_head(q, k, v.reshape(heads), mask)
        return self.output(out.reshape(length, dim)), weights


def sinusoidal_positions(length: int, dim: int, base: float = 10000.0) -> Float[Array, "L D"]:
    """The sinusoidal position code of Vaswani et al. (2017).

    `P[p, 2i] = sin(p / base^(2i/dim))` and `P[p, 2i+1] = cos(p / base^(2i/dim))`: each pair of
    features is a clock turning at its own frequency, from one turn per 2*pi positions down to
    one per `2*pi*base` positions.
    """
    if dim % 2 or dim < 2:
        raise ValueError(f"dim={dim} must be even: features come in (sin, cos) pairs")
    if length < 0:
        raise ValueError(f"length must be non-negative, got {length}")
    inv_freq = base ** (-jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)
    angles = jnp.arange(length, dtype=jnp.float32)[:, None] * inv_freq
    return jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(length, dim)


class EncoderBlock(eqx.Module):
    """Pre-LayerNorm encoder block: `x + MHA(LN(x))`, then `x + MLP(LN(x))`.

    Normalising the input of each branch, not the sum, leaves a clean residual path from input
    to output, which is what lets deep stacks train without a learning-rate warm-up
    (Xiong et al. 2020); ESM2 and GPT use the same layout.
    """

    attn_norm: eqx.nn.LayerNorm
    attn: MultiHeadAttention
    mlp_norm: eqx.nn.LayerNorm
    mlp: eqx.nn.MLP

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int | None = None,
        *,
        rotary: bool = False,
        key: PRNGKeyArray,
    ):
        ka, km = jr.split(key)
        self.attn_norm = eqx.nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, rotary=rotary, key=ka)
        self.mlp_norm = eqx.nn.LayerNorm(dim)
        width = 4 * dim if mlp_dim is None else mlp_dim
        self.mlp = eqx.nn.MLP(dim, dim, width, depth=1, activation=jax.nn.gelu, key=km)

    def __call__(
        self, x: Float[Array, "L D"], mask: Bool[Array, " L"] | Bool[Array, "L L"] | None = None
    ) -> tuple[Float[Array, "L D"], Float[Array, "H L L"]]:
        h, weights = self.attn(jax.vmap(self.attn_norm)(x), mask)
        x = x + h
        x = x + jax.vmap(self.mlp)(jax.vmap(self.mlp_norm)(x))
        return x, weights
