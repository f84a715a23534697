"""Autoregressive flows: MAF (Papamakarios et al. 2017) and IAF (Kingma et al. 2016), on vectors.

Both are stacks of the same layer, an affine map whose scale and shift for coordinate `i`
come from a MADE network (Germain et al. 2015) that sees only coordinates before `i`:

$$
b_i = a_i \\, e^{s_i(a_{<i})} + m_i(a_{<i}).
$$

Computing `b` from `a` is **one pass** of the network (all `s_i, m_i` at once, since `a` is
known); recovering `a` from `b` takes **D passes**, one coordinate at a time, because `s_i`
needs the `a_{<i}` recovered so far. The two flows put the fast direction on opposite sides:

- **MAF** maps data to noise with it: the density of a data point is one pass, a sample D.
- **IAF** maps noise to data with it: a sample is one pass, the density of a given point D.

`AutoregressiveFlow(kind="maf" | "iaf")` has `log_prob(x)` and `sample(key)` for one point
`(D,)`; batch them with `jax.vmap`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from tutorial_lib.generative.flow import standard_normal_log_prob

__all__ = [
    "MADE",
    "AutoregressiveAffine",
    "AutoregressiveFlow",
    "fit_autoregressive_flow",
    "made_masks",
]


def made_masks(dim: int, hidden: int, depth: int) -> list[Bool[Array, "out in"]]:
    """The binary masks of a MADE with `depth` hidden layers of `hidden` units.

    Input `j` has degree `j + 1`; hidden units cycle through degrees `1..D-1`; output `i`
    (twice: scale and shift) has degree `i + 1`. A hidden unit sees inputs of degree <= its
    own, an output sees hidden units of degree < its own, so output `i` depends only on
    inputs `< i`.
    """
    d_in = jnp.arange(1, dim + 1)
    d_hidden = jnp.arange(hidden) % max(1, dim - 1) + 1
    masks = [d_hidden[:, None] >= d_in[None, :]]
    for _ in range(depth - 1):
        masks.append(d_hidden[:, None] >= d_hidden[None, :])
    d_out = jnp.concatenate([d_in, d_in])
    masks.append(d_out[:, None] > d_hidden[None, :])
    return masks


class MADE(eqx.Module):
    """Masked autoencoder: `a` `(D,)` -> `(s, m)`, each `(D,)`, with `s_i, m_i` functions of
    `a_{<i}` only (`s_0, m_0` are constants)."""

    layers: tuple[eqx.nn.Linear, ...]
    masks: tuple[Bool[Array, "out in"], ...]  # boolean, so never trained

    def __init__(self, dim: int, hidden: int = 64, depth: int = 2, *, key: PRNGKeyArray):
        masks = made_masks(dim, hidden, depth)
        sizes = [dim] + [hidden] * depth + [2 * dim]
        keys = jr.split(key, len(masks))
        layers = [
            eqx.nn.Linear(i, o, key=k) for i, o, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        ]
        # The last layer starts at zero: a new layer is the identity map.
        layers[-1] = eqx.tree_at(
            lambda lin: (lin.weight, lin.bias), layers[-1], replace_fn=jnp.zeros_like
        )
        self.layers = tuple(layers)
        self.masks = tuple(masks)

    def __call__(self, a: Float[Array, " d"]) -> tuple[Float[Array, " d"], Float[Array, " d"]]:
        h = a
        for layer, mask in zip(self.layers[:-1], self.masks[:-1], strict=True):
            h = jax.nn.gelu(jnp.where(mask, layer.weight, 0.0) @ h + layer.bias)
        last, mask = self.layers[-1], self.masks[-1]
        raw_s, m = jnp.split(jnp.where(mask, last.weight, 0.0) @ h + last.bias, 2)
        return 2.0 * jnp.tanh(raw_s / 2.0), m  # log-scales kept in (-2, 2) for stability


class AutoregressiveAffine(eqx.Module):
    """`b = a * exp(s(a)) + m(a)` with a MADE; `reverse` flips the coordinate order first, so
    that stacked layers alternate which coordinate comes first."""

    made: MADE
    reverse: bool = eqx.field(static=True)

    def fast(self, a: Float[Array, " d"]) -> tuple[Float[Array, " d"], Float[Array, ""]]:
        """`a -> b` in one network pass, with `log |det db/da| = sum(s)`."""
        a_ = a[::-1] if self.reverse else a
        s, m = self.made(a_)
        b = a_ * jnp.exp(s) + m
        return (b[::-1] if self.reverse else b), jnp.sum(s)

    def slow(self, b: Float[Array, " d"]) -> Float[Array, " d"]:
        """`b -> a`: D network passes, recovering one more coordinate each time."""
        b_ = b[::-1] if self.reverse else b

        def body(i, a):
            s, m = self.made(a)
            return a.at[i].set((b_[i] - m[i]) * jnp.exp(-s[i]))

        a = jax.lax.fori_loop(0, b.shape[0], body, jnp.zeros_like(b_))
        return a[::-1] if self.reverse else a


class AutoregressiveFlow(eqx.Module):
    """A stack of `AutoregressiveAffine` layers with a standard normal base, as MAF or IAF.

    MAF: `u = fast(x)` (data to noise), so `log_prob` is one pass per layer and `sample` D.
    IAF: `x = fast(u)` (noise to data), so `sample` is one pass per layer and `log_prob` D.
    """

    layers: tuple[AutoregressiveAffine, ...]
    kind: str = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        kind: str,
        *,
        layers: int = 5,
        hidden: int = 64,
        depth: int = 2,
        key: PRNGKeyArray,
    ):
        if kind not in ("maf", "iaf"):
            raise ValueError(f"kind must be 'maf' or 'iaf', got {kind!r}")
        if dim < 2:
            raise ValueError(f"an autoregressive flow needs dim >= 2, got {dim}")
        keys = jr.split(key, layers)
        self.layers = tuple(
            AutoregressiveAffine(MADE(dim, hidden, depth, key=k), bool(i % 2))
            for i, k in enumerate(keys)
        )
        self.kind = kind

    def log_prob(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        """`log p(x)` of one point: one network pass per layer for MAF, D for IAF."""
        if self.kind == "maf":
            log_det = jnp.zeros(())
            for layer in self.layers:
                x, ld = layer.fast(x)
                log_det = log_det + ld
            return standard_normal_log_prob(x) + log_det
        # IAF: invert every layer (D passes each), then add up its log-scales at the recovered
        # input, which costs one more pass.
        log_det = jnp.zeros(())
        for layer in reversed(self.layers):
            x = layer.slow(x)
            log_det = log_det + layer.fast(x)[1]
        return standard_normal_log_prob(x) - log_det

    def sample(self, key: PRNGKeyArray) -> Float[Array, " d"]:
        """One sample: one network pass per layer for IAF, D for MAF."""
        dim = self.layers[0].made.masks[0].shape[1]
        z = jr.normal(key, (dim,))
        if self.kind == "iaf":
            for layer in self.layers:
                z = layer.fast(z)[0]
            return z
        for layer in reversed(self.layers):
            z = layer.slow(z)
        return z


def fit_autoregressive_flow(
    flow: AutoregressiveFlow,
    data: Float[Array, "n d"],
    key: PRNGKeyArray,
    *,
    steps: int = 1000,
    batch: int = 256,
    learning_rate: float = 3e-3,
) -> tuple[AutoregressiveFlow, Float[Array, " steps"]]:
    """Maximum likelihood on `data` with Adam: `(trained flow, loss per step)`.

    For an IAF every step inverts the flow (D passes per layer): training by density is
    exactly what IAFs are slow at.
    """
    import optax

    opt = optax.adam(learning_rate)
    params, static = eqx.partition(flow, eqx.is_inexact_array)

    def loss(params, x):
        model = eqx.combine(params, static)
        return -jnp.mean(jax.vmap(model.log_prob)(x))

    def step(carry, k):
        params, state = carry
        x = data[jr.randint(k, (batch,), 0, data.shape[0])]
        value, grads = jax.value_and_grad(loss)(params, x)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), value

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), jr.split(key, steps))
    return eqx.combine(params, static), losses
