"""The ESM2 protein language model (Lin et al. 2023) as Equinox modules.

A pre-LayerNorm BERT-style encoder with rotary position embeddings, trained by masked-language
modelling. Every module acts on ONE sequence of token ids, shape `(L,)`; batch with `jax.vmap`
over right-padded token arrays (`<pad>` keys are masked out of attention, so a sequence's
outputs do not depend on how much padding follows it).

Numerically this matches Hugging Face's `EsmForMaskedLM` (and the original `esm` package):

- token-dropout rescaling of the embeddings, at inference too: `<mask>` embeddings are zeroed
  and the rest scaled by `(1 - 0.15 * 0.8) / (1 - observed mask fraction)`, the fraction taken
  over the non-pad tokens;
- queries scaled by `head_dim ** -0.5` before the rotary embedding, ESM's `rotate_half`
  convention (the two halves of each head, not interleaved pairs);
- the exact (erf) GELU, LayerNorm eps from the config (1e-5 for ESM2);
- LM head: dense, GELU, LayerNorm, decoder tied to the token embeddings (unless a checkpoint
  stores its own), plus a bias;
- contact head: attention maps of all layers and heads without `<cls>`/`<eos>`, symmetrised,
  average-product corrected, then a logistic regression over the `layers * heads` channels.
"""

import dataclasses
import warnings
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from tutorial_lib.protein.alphabet import MASK, PAD, VOCAB_SIZE
from tutorial_lib.protein.attention import Dense, apply_rotary
from tutorial_lib.protein.contacts import contact_features

__all__ = [
    "ESM2",
    "ContactHead",
    "ESM2Config",
    "ESM2Output",
    "LMHead",
    "LongSequenceWarning",
    "SelfAttention",
    "TransformerLayer",
    "forward_batch",
]

# ESM's training masked 15% of positions and replaced 80% of those by <mask>.
_MASK_RATIO_TRAIN = 0.15 * 0.8
# ESM2 was trained on crops of at most 1,024 tokens: <cls>, 1,022 residues, <eos>.
_TRAINED_TOKENS = 1024


class LongSequenceWarning(UserWarning):
    """Tokens beyond the 1,024 positions ESM2 was trained on: the outputs are extrapolation."""


def _check_length(length: int) -> None:
    """Trace-time checks of the (static) token length."""
    if length == 0:
        raise ValueError(
            "ESM2 got an empty token array, shape (0,); encode sequences with "
            "tutorial_lib.protein.tokenize, which adds <cls> and <eos>"
        )
    if length > _TRAINED_TOKENS:
        # Warned while tracing, so once per compiled shape; the length in the message makes
        # Python's default filter show it once per length in eager code too.
        warnings.warn(
            f"ESM2 got {length} tokens: it was trained on at most {_TRAINED_TOKENS - 2:,} "
            f"residues ({_TRAINED_TOKENS:,} tokens with <cls> and <eos>), so outputs beyond that "
            "are extrapolation. Crop long sequences, or predict in overlapping windows.",
            LongSequenceWarning,
            stacklevel=3,
        )


@dataclasses.dataclass(frozen=True)
class ESM2Config:
    """Sizes of an ESM2 model. The defaults are `esm2_t6_8M_UR50D`'s."""

    num_layers: int = 6
    embed_dim: int = 320
    num_heads: int = 20
    ffn_dim: int = 1280
    vocab_size: int = VOCAB_SIZE
    layer_norm_eps: float = 1e-5
    token_dropout: bool = True
    rope_theta: float = 10000.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim={self.embed_dim} is not a multiple of num_heads={self.num_heads}"
            )
        if (self.embed_dim // self.num_heads) % 2:
            raise ValueError(
                f"head dimension {self.embed_dim // self.num_heads} must be even for rotary "
                "embeddings; change embed_dim or num_heads"
            )
        if self.vocab_size != VOCAB_SIZE:
            raise ValueError(
                f"vocab_size={self.vocab_size}: only the standard {VOCAB_SIZE}-token ESM "
                "alphabet is supported"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ESM2Config":
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - names
        if extra:
            raise ValueError(f"unknown ESM2Config fields {sorted(extra)}; known: {sorted(names)}")
        return cls(**d)


class ESM2Output(NamedTuple):
    """What `ESM2.__call__` returns for one sequence of `L` tokens."""

    logits: Float[Array, "L V"]
    hidden: Float[Array, "L D"]  # the final-LayerNorm representations ("embeddings")
    attentions: Float[Array, "layers heads L L"] | None = None
    contacts: Float[Array, "L-2 L-2"] | None = None


def _gelu(x: Array) -> Array:
    return jax.nn.gelu(x, approximate=False)


def _norm(ln: eqx.nn.LayerNorm, x: Float[Array, "L D"]) -> Float[Array, "L D"]:
    return jax.vmap(ln)(x)


def _dropout(x: Array, rate: float, key: PRNGKeyArray | None) -> Array:
    if key is None or rate == 0.0:
        return x
    keep = jr.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class SelfAttention(eqx.Module):
    query: Dense
    key: Dense
    value: Dense
    output: Dense
    num_heads: int = eqx.field(static=True)
    rope_theta: float = eqx.field(static=True)

    def __init__(self, dim: int, num_heads: int, rope_theta: float, *, key: PRNGKeyArray):
        kq, kk, kv, ko = jr.split(key, 4)
        self.query = Dense(dim, dim, key=kq)
        self.key = Dense(dim, dim, key=kk)
        self.value = Dense(dim, dim, key=kv)
        self.output = Dense(dim, dim, key=ko)
        self.num_heads = num_heads
        self.rope_theta = rope_theta

    def __call__(
        self, x: Float[Array, "L D"], pad: Bool[Array, " L"]
    ) -> tuple[Float[Array, "L D"], Float[Array, "H L L"]]:
        length, dim = x.shape
        heads = (length, self.num_heads, dim // self.num_heads)
        # ESM scales the queries, not the scores, and does so before the rotation.
        q = self.query(x).reshape(heads) * (dim // self.num_heads) ** -0.5
        k = self.key(x).reshape(heads)
        v = self.value(x).reshape(heads)
        q, k = apply_rotary(q, self.rope_theta), apply_rotary(k, self.rope_theta)
        # Heads first, so both products are plain batched matrix products: XLA:CPU runs the
        # mixed layouts of `einsum("hqk,khd->qhd")` more than twice as slowly.
        q, k, v = (jnp.swapaxes(t, 0, 1) for t in (q, k, v))
        out = jnp.swapaxes(_attend(q, k, v, pad), 0, 1).reshape(length, dim)
        # The maps themselves, for callers that ask for them (unused, XLA drops this).
        weights = jax.nn.softmax(_masked_scores(q, k, pad), axis=-1)
        return self.output(out), weights


def _masked_scores(
    q: Float[Array, "H Q d"], k: Float[Array, "H K d"], pad: Bool[Array, " K"]
) -> Float[Array, "H Q K"]:
    # The mask is ADDED, not applied with `jnp.where`: XLA:CPU then fuses both products and
    # the softmax into one kernel that never stores the scores (`where` breaks that fusion;
    # the ESM2 chapter times the cost). A finite floor rather than -inf keeps an all-padding
    # row finite.
    bias = jnp.where(pad, jnp.finfo(q.dtype).min, 0.0).astype(q.dtype)
    return q @ jnp.swapaxes(k, -1, -2) + bias


def _attend(
    q: Float[Array, "H L d"],
    k: Float[Array, "H L d"],
    v: Float[Array, "H L d"],
    pad: Bool[Array, " L"],
) -> Float[Array, "H L d"]:
    """`softmax(q kᵀ) v` over the non-padding keys, normalised after the product with `v`."""
    scores = _masked_scores(q, k, pad)
    p = jnp.exp(scores - jax.lax.stop_gradient(scores.max(-1, keepdims=True)))
    return (p @ v) / p.sum(-1, keepdims=True)


class TransformerLayer(eqx.Module):
    """Pre-LN block: `x + Attn(LN(x))`, then `x + W2 gelu(W1 LN(x))`."""

    attn_norm: eqx.nn.LayerNorm
    attn: SelfAttention
    ffn_norm: eqx.nn.LayerNorm
    fc1: Dense
    fc2: Dense
    dropout: float = eqx.field(static=True)

    def __init__(self, config: ESM2Config, *, key: PRNGKeyArray):
        ka, k1, k2 = jr.split(key, 3)
        d, eps = config.embed_dim, config.layer_norm_eps
        self.attn_norm = eqx.nn.LayerNorm(d, eps=eps)
        self.attn = SelfAttention(d, config.num_heads, config.rope_theta, key=ka)
        self.ffn_norm = eqx.nn.LayerNorm(d, eps=eps)
        self.fc1 = Dense(d, config.ffn_dim, key=k1)
        self.fc2 = Dense(config.ffn_dim, d, key=k2)
        self.dropout = config.dropout

    def __call__(
        self, x: Float[Array, "L D"], pad: Bool[Array, " L"], *, key: PRNGKeyArray | None = None
    ) -> tuple[Float[Array, "L D"], Float[Array, "H L L"]]:
        k1, k2 = (None, None) if key is None else jr.split(key)
        h, weights = self.attn(_norm(self.attn_norm, x), pad)
        x = x + _dropout(h, self.dropout, k1)
        h = self.fc2(_gelu(self.fc1(_norm(self.ffn_norm, x))))
        return x + _dropout(h, self.dropout, k2), weights


class LMHead(eqx.Module):
    """Token logits from final representations; `decoder=None` ties it to the embeddings."""

    dense: Dense
    norm: eqx.nn.LayerNorm
    bias: Float[Array, " V"]
    decoder: Float[Array, "V D"] | None

    def __init__(self, config: ESM2Config, *, key: PRNGKeyArray):
        self.dense = Dense(config.embed_dim, config.embed_dim, key=key)
        self.norm = eqx.nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.bias = jnp.zeros(config.vocab_size)
        self.decoder = None

    def __call__(
        self, x: Float[Array, "L D"], embedding: Float[Array, "V D"]
    ) -> Float[Array, "L V"]:
        h = _norm(self.norm, _gelu(self.dense(x)))
        weight = embedding if self.decoder is None else self.decoder
        return h @ weight.T + self.bias


class ContactHead(eqx.Module):
    """Residue-residue contact probabilities from the attention maps (Rao et al. 2021)."""

    regression: Dense

    def __init__(self, config: ESM2Config, *, key: PRNGKeyArray):
        self.regression = Dense(config.num_layers * config.num_heads, 1, key=key)

    def __call__(
        self, tokens: Int[Array, " L"], attentions: Float[Array, "layers heads L L"]
    ) -> Float[Array, "L-2 L-2"]:
        if tokens.shape[0] < 3:
            raise ValueError(
                "contacts need at least one residue between <cls> and <eos> (3 tokens), got "
                f"tokens of shape {tokens.shape}: an empty sequence has no contact map"
            )
        # One feature map per layer and head: `tutorial_lib.protein.contacts` explains them.
        a = contact_features(attentions, tokens)
        a = a.reshape(-1, *a.shape[-2:])
        logits = jnp.einsum("c,cij->ij", self.regression.weight[0], a) + self.regression.bias[0]
        return jax.nn.sigmoid(logits)


class ESM2(eqx.Module):
    """ESM2 masked language model for one sequence of token ids (see the module docstring)."""

    embedding: eqx.nn.Embedding
    layers: tuple[TransformerLayer, ...]
    final_norm: eqx.nn.LayerNorm  # `emb_layer_norm_after`
    lm_head: LMHead
    contact_head: ContactHead
    config: ESM2Config = eqx.field(static=True)

    def __init__(self, config: ESM2Config, *, key: PRNGKeyArray):
        ke, kl, kh, kc = jr.split(key, 4)
        weight = 0.02 * jr.normal(ke, (config.vocab_size, config.embed_dim))
        self.embedding = eqx.nn.Embedding(weight=weight)
        self.layers = tuple(
            TransformerLayer(config, key=k) for k in jr.split(kl, config.num_layers)
        )
        self.final_norm = eqx.nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.lm_head = LMHead(config, key=kh)
        self.contact_head = ContactHead(config, key=kc)
        self.config = config

    def embed(self, tokens: Int[Array, " L"]) -> Float[Array, "L D"]:
        """Token embeddings with ESM's token-dropout rescaling; padding rows are zero."""
        # An out-of-range id would silently gather a clamped (or wrapped) row.
        vocab = self.config.vocab_size
        tokens = eqx.error_if(
            tokens,
            (tokens < 0) | (tokens >= vocab),
            f"token ids must be in 0..{vocab - 1} (the ESM alphabet); encode sequences with "
            "tutorial_lib.protein.tokenize or batch_tokenize",
        )
        pad = tokens == PAD
        x = self.embedding.weight[tokens]
        if self.config.token_dropout:
            is_mask = tokens == MASK
            x = jnp.where(is_mask[:, None], 0.0, x)
            observed = is_mask.sum() / jnp.maximum((~pad).sum(), 1)
            x = x * ((1.0 - _MASK_RATIO_TRAIN) / (1.0 - observed))
        return jnp.where(pad[:, None], 0.0, x)

    def __call__(
        self,
        tokens: Int[Array, "..."],
        *,
        key: PRNGKeyArray | None = None,
        return_attentions: bool = False,
        return_contacts: bool = False,
    ) -> ESM2Output:
        """Logits and representations of one tokenised sequence, `tokens` of shape `(L,)` (a
        batch raises a `ValueError` pointing to `jax.vmap` and `forward_batch`).

        `key` switches dropout on (training); without it the model is deterministic.
        `return_contacts` adds the contact map of the residues, shape `(L-2, L-2)`.
        """
        if tokens.ndim != 1:
            raise ValueError(
                f"ESM2 takes one sequence of token ids, shape (L,), got {tokens.shape}; "
                "for a batch use jax.vmap(model) or forward_batch(model, tokens)"
            )
        _check_length(tokens.shape[0])
        pad = tokens == PAD
        x = self.embed(tokens)
        keys = [None] * len(self.layers) if key is None else list(jr.split(key, len(self.layers)))
        maps = []
        for layer, k in zip(self.layers, keys, strict=True):
            x, weights = layer(x, pad, key=k)
            maps.append(weights)
        hidden = _norm(self.final_norm, x)
        logits = self.lm_head(hidden, self.embedding.weight)
        attentions = jnp.stack(maps) if return_attentions or return_contacts else None
        contacts = self.contact_head(tokens, attentions) if return_contacts else None
        return ESM2Output(logits, hidden, attentions if return_attentions else None, contacts)


@eqx.filter_jit
def forward_batch(model: ESM2, tokens: Int[Array, "B L"]) -> ESM2Output:
    """Compiled forward pass of a right-padded batch (logits and representations)."""
    return jax.vmap(model)(tokens)
