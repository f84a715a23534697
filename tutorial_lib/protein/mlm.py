"""Masked-language modelling: BERT's 80/10/10 corruption, its loss, and perplexities.

Of the residue positions (`is_residue`: never `<cls>`, `<eos>`, `<pad>`, `<mask>`, ...), each
is selected with probability 15%. A selected position becomes `<mask>` 80% of the time, a
random standard amino acid 10% of the time, and stays as it is 10% of the time; the loss is
the cross-entropy of the original residue at the selected positions only (Devlin et al. 2019;
Rives et al. 2021).

The masked-token perplexity is `exp` of that cross-entropy averaged over all selected tokens
of a data set. The unigram baseline is the perplexity of a model that ignores the context and
predicts every residue with its overall frequency: about 17-18 for natural proteins, while a
uniform guess over the 20 amino acids scores 20.
"""

from typing import Any, NamedTuple, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from tutorial_lib.protein.alphabet import (
    AMINO_ACID_IDS,
    MASK,
    PAD,
    RESIDUE_IDS,
    VOCAB_SIZE,
    is_residue,
)
from tutorial_lib.protein.esm2 import ESM2

__all__ = [
    "MaskedLM",
    "MaskedTokens",
    "mask_tokens",
    "masked_cross_entropy",
    "masked_nll_per_sequence",
    "masked_perplexity",
    "mlm_loss",
    "unigram_perplexity",
]


class MaskedTokens(NamedTuple):
    """A corrupted sequence, the original one, and which positions the loss scores."""

    inputs: Int[Array, " L"]
    targets: Int[Array, " L"]
    selected: Bool[Array, " L"]


def mask_tokens(
    key: PRNGKeyArray,
    tokens: Int[Array, " L"],
    *,
    mask_prob: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
) -> MaskedTokens:
    """BERT/ESM corruption of one tokenised sequence (see the module docstring)."""
    if not (0 <= mask_prob <= 1 and mask_frac >= 0 and random_frac >= 0):
        raise ValueError("mask_prob must be in [0, 1] and the fractions non-negative")
    if mask_frac + random_frac > 1:
        raise ValueError(f"mask_frac + random_frac = {mask_frac + random_frac} exceeds 1")
    k_select, k_how, k_random = jr.split(key, 3)
    selected = jr.bernoulli(k_select, mask_prob, tokens.shape) & is_residue(tokens)
    how = jr.uniform(k_how, tokens.shape)
    random_ids = jnp.asarray(AMINO_ACID_IDS)[
        jr.randint(k_random, tokens.shape, 0, len(AMINO_ACID_IDS))
    ]
    inputs = jnp.where(selected & (how < mask_frac), MASK, tokens)
    swap = selected & (how >= mask_frac) & (how < mask_frac + random_frac)
    inputs = jnp.where(swap, random_ids, inputs)
    return MaskedTokens(inputs.astype(tokens.dtype), tokens, selected)


def masked_cross_entropy(
    logits: Float[Array, "*batch L V"],
    targets: Int[Array, "*batch L"],
    selected: Bool[Array, "*batch L"],
) -> tuple[Float[Array, ""], Int[Array, ""]]:
    """Summed cross-entropy over the selected positions, and how many there are."""
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return jnp.sum(jnp.where(selected, ce, 0.0)), jnp.sum(selected)


@runtime_checkable
class MaskedLM(Protocol):
    """A masked language model as `mlm_loss` uses it: called on the token ids of ONE sequence,
    `(L,)`, it returns an output whose `.logits` are `(L, V)`. `ESM2` is one, and so is the
    character model `tutorial_lib.protein.char_mlm.CharMLM`."""

    def __call__(self, tokens: Int[Array, " L"], /) -> Any: ...


def mlm_loss(
    model: MaskedLM, batch: MaskedTokens, *, key: PRNGKeyArray | None = None
) -> Float[Array, ""]:
    """Mean cross-entropy per selected token of a batch `MaskedTokens` of shape `(B, L)`.

    `model` is an `ESM2` or another `MaskedLM`. `key` switches dropout on (then `model` must
    also take `key=`, as `ESM2` does). Every selected token weighs the same, whichever
    sequence it is in.
    """
    if key is None:
        logits = jax.vmap(lambda t: model(t).logits)(batch.inputs)
    else:
        keys = jr.split(key, batch.inputs.shape[0])
        logits = jax.vmap(lambda t, k: model(t, key=k).logits)(batch.inputs, keys)
    total, count = masked_cross_entropy(logits, batch.targets, batch.selected)
    return total / jnp.maximum(count, 1)


@eqx.filter_jit
def _scored(model: ESM2, tokens: Int[Array, "B L"], key: PRNGKeyArray):
    batch = jax.vmap(mask_tokens)(jr.split(key, tokens.shape[0]), tokens)
    logits = jax.vmap(lambda t: model(t).logits)(batch.inputs)
    return masked_cross_entropy(logits, batch.targets, batch.selected)


def masked_perplexity(
    model: ESM2,
    tokens: Int[np.ndarray, "N L"],
    *,
    key: PRNGKeyArray,
    batch_size: int = 64,
) -> float:
    """Masked-token perplexity of `model` on right-padded token rows, 80/10/10 corruption.

    The corruption is drawn from `key`, so the same key scores the same positions. The last
    batch is padded with all-`<pad>` rows (nothing to score) to keep one compiled shape.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or len(tokens) == 0:
        raise ValueError(f"tokens must be a non-empty (N, L) array, got shape {tokens.shape}")
    total, count = 0.0, 0
    for i, start in enumerate(range(0, len(tokens), batch_size)):
        chunk = tokens[start : start + batch_size]
        if len(chunk) < batch_size:
            filler = np.full((batch_size - len(chunk), tokens.shape[1]), PAD, tokens.dtype)
            chunk = np.concatenate([chunk, filler])
        s, c = _scored(model, jnp.asarray(chunk), jr.fold_in(key, i))
        total += float(s)
        count += int(c)
    if count == 0:
        raise ValueError("no position was selected for scoring: the rows hold no residues")
    return float(np.exp(total / count))


@eqx.filter_jit
def _scored_rows(model: ESM2, tokens: Int[Array, "B L"], key: PRNGKeyArray):
    batch = jax.vmap(mask_tokens)(jr.split(key, tokens.shape[0]), tokens)
    logits = jax.vmap(lambda t: model(t).logits)(batch.inputs)
    return jax.vmap(masked_cross_entropy)(logits, batch.targets, batch.selected)


def masked_nll_per_sequence(
    model: ESM2,
    tokens: Int[np.ndarray, "N L"],
    *,
    key: PRNGKeyArray,
    batch_size: int = 64,
) -> tuple[Float[np.ndarray, " N"], Int[np.ndarray, " N"]]:
    """`masked_perplexity`, row by row: each row's summed masked-token cross-entropy (nats)
    and how many positions it scored, with the same masks for the same `key` and
    `batch_size`. `exp(nll[rows].sum() / count[rows].sum())` is the perplexity of any subset of
    rows, so that subsets (and bootstrap resamples) of one scoring can be compared.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or len(tokens) == 0:
        raise ValueError(f"tokens must be a non-empty (N, L) array, got shape {tokens.shape}")
    nll, count = [], []
    for i, start in enumerate(range(0, len(tokens), batch_size)):
        chunk = tokens[start : start + batch_size]
        n = len(chunk)
        if n < batch_size:
            filler = np.full((batch_size - n, tokens.shape[1]), PAD, tokens.dtype)
            chunk = np.concatenate([chunk, filler])
        s, c = _scored_rows(model, jnp.asarray(chunk), jr.fold_in(key, i))
        nll.append(np.asarray(s, np.float64)[:n])
        count.append(np.asarray(c)[:n])
    return np.concatenate(nll), np.concatenate(count)


_RESIDUE = np.isin(np.arange(VOCAB_SIZE), RESIDUE_IDS)


def _residue_counts(tokens: Int[np.ndarray, "..."]) -> np.ndarray:
    counts = np.bincount(np.asarray(tokens).ravel(), minlength=VOCAB_SIZE).astype(np.float64)
    return np.where(_RESIDUE, counts, 0.0)


def unigram_perplexity(
    tokens: Int[np.ndarray, "..."],
    reference: Int[np.ndarray, "..."] | None = None,
    *,
    smoothing: float = 1.0,
) -> float:
    """Perplexity of the residues in `tokens` under residue frequencies from `reference`.

    `reference` defaults to `tokens` itself. `smoothing` pseudo-counts are added to every
    residue token (`RESIDUE_IDS`), so a residue absent from the reference costs a finite amount;
    with `smoothing=0` and no reference this is `exp` of the residue entropy. Special tokens and
    gaps are ignored in both.
    """
    counts = _residue_counts(tokens)
    if counts.sum() == 0:
        raise ValueError("tokens hold no residues")
    ref = _residue_counts(tokens if reference is None else reference)
    probs = np.where(_RESIDUE, ref + smoothing, 0.0)
    probs /= probs.sum()
    with np.errstate(divide="ignore"):
        logp = np.where(counts > 0, np.log(probs), 0.0)
    return float(np.exp(-(counts * logp).sum() / counts.sum()))
