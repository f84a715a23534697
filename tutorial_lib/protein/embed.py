"""Fixed-size protein embeddings: the mean of ESM2's final representations over residues.

A language model turns a protein of any length into per-residue vectors, shape `(L, D)`.
Averaging them over the residues (`is_residue`: never `<cls>`, `<eos>`, `<pad>` or `<mask>`)
gives one `D`-vector per protein, the "mean-pooled embedding" that simple downstream models (a
logistic or ridge head) are trained on (Rives et al. 2021; Elnaggar et al. 2022).

`embed_sequences` does this for a list of strings efficiently and deterministically:

- sequences longer than `max_len - 2` residues are *centre-cropped* to their middle
  `max_len - 2` residues (the two extra tokens are `<cls>` and `<eos>`);
- sequences are sorted by length and grouped into buckets whose token length is a multiple
  of `bucket` (at most `max_len`), so a batch pads only up to the next multiple; every batch
  has exactly `batch_size` rows (the last one of a bucket is filled with all-`<pad>` rows), so
  the jitted function compiles once per bucket length, not once per batch;
- the result is returned in the input order.
"""

import dataclasses
import time
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from tutorial_lib.benchmark import best_time
from tutorial_lib.protein.alphabet import PAD, is_residue, random_tokens, tokenize
from tutorial_lib.protein.esm2 import ESM2

__all__ = [
    "EmbeddingTiming",
    "centre_crop",
    "embed_sequences",
    "embedding_throughput",
    "mean_embedding",
    "mean_over_residues",
    "timed_embed_sequences",
]


def mean_over_residues(hidden: Float[Array, "L D"], tokens: Int[Array, " L"]) -> Float[Array, " D"]:
    """Mean of the rows of `hidden` at the residues of `tokens` (`is_residue`); zeros if none."""
    keep = is_residue(tokens)
    total = jnp.sum(jnp.where(keep[:, None], hidden, 0.0), axis=0)
    return total / jnp.maximum(keep.sum(), 1)


def mean_embedding(model: ESM2, tokens: Int[Array, " L"]) -> Float[Array, " D"]:
    """Mean of the final-LayerNorm hidden states of one tokenised sequence over its residues.

    `<cls>`, `<eos>`, `<pad>` and `<mask>` positions are excluded (`is_residue`), so the result
    does not depend on how much padding follows the sequence. An all-padding row gives zeros.
    Works under `jax.jit` and `jax.vmap`.
    """
    return mean_over_residues(model(tokens).hidden, tokens)


@eqx.filter_jit
def _embed_batch(model: ESM2, tokens: Int[Array, "B L"]) -> Float[Array, "B D"]:
    return jax.vmap(lambda t: mean_embedding(model, t))(tokens)


def centre_crop(sequence: str, max_residues: int) -> str:
    """The middle `max_residues` residues of `sequence` (the sequence itself if it fits).

    When the excess is odd, one more residue is dropped from the end than from the start.
    """
    if max_residues < 1:
        raise ValueError(f"max_residues must be positive, got {max_residues}")
    excess = len(sequence) - max_residues
    if excess <= 0:
        return sequence
    start = excess // 2
    return sequence[start : start + max_residues]


def _check_sizes(max_len: int, batch_size: int, bucket: int) -> None:
    if max_len < 3:
        raise ValueError(f"max_len must be at least 3 (<cls>, one residue, <eos>), got {max_len}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if bucket < 1:
        raise ValueError(f"bucket must be positive, got {bucket}")


def embed_sequences(
    model: ESM2,
    sequences: Sequence[str],
    *,
    max_len: int = 512,
    batch_size: int = 32,
    bucket: int = 64,
    unknown: str | None = "X",
) -> Float[np.ndarray, "n D"]:
    """Mean-pooled embeddings of `sequences`, shape `(n, D)`, as float32, in input order.

    `max_len` counts tokens, `<cls>` and `<eos>` included; longer sequences are centre-cropped
    (see the module docstring). Residues are case-insensitive. Letters outside the ESM
    alphabet (J, for instance) become the `unknown` token, `X` by default as in the tiny
    model's training, or raise with `unknown=None`; anything but a letter raises `ValueError`
    naming the sequence.
    """
    _check_sizes(max_len, batch_size, bucket)
    if isinstance(sequences, str):
        raise TypeError("embed_sequences expects a list of sequences, not one str")
    sequences = list(sequences)
    dim = model.config.embed_dim
    if not sequences:
        return np.zeros((0, dim), np.float32)
    rows = []
    for i, s in enumerate(sequences):
        if not isinstance(s, str) or not s:
            raise ValueError(f"sequence {i} must be a non-empty str, got {s!r}")
        if not (s.isascii() and s.isalpha()):
            bad = next(c for c in s if not (c.isascii() and c.isalpha()))
            raise ValueError(
                f"sequence {i} ({s[:30]!r}{'...' if len(s) > 30 else ''}) holds {bad!r}: "
                "only one-letter amino-acid codes are allowed"
            )
        rows.append(tokenize(centre_crop(s, max_len - 2), unknown=unknown))
    lengths = np.array([len(r) for r in rows])
    padded = np.minimum(-(-lengths // bucket) * bucket, max_len)
    order = np.lexsort((np.arange(len(rows)), lengths))  # by length, ties by index
    out = np.zeros((len(rows), dim), np.float32)
    for width in np.unique(padded):
        members = order[padded[order] == width]
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            tokens = np.full((batch_size, width), PAD, np.int32)
            for j, i in enumerate(chunk):
                tokens[j, : lengths[i]] = rows[i]
            out[chunk] = np.asarray(_embed_batch(model, jnp.asarray(tokens)))[: len(chunk)]
    return out


@dataclasses.dataclass(frozen=True)
class EmbeddingTiming:
    """Wall-clock seconds of an `embed_sequences` call and what they bought."""

    seconds: float
    n_sequences: int
    n_tokens: int  # tokens embedded (after cropping, without padding)

    @property
    def sequences_per_s(self) -> float:
        return self.n_sequences / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.n_tokens / self.seconds


def timed_embed_sequences(
    model: ESM2, sequences: Sequence[str], **kwargs
) -> tuple[Float[np.ndarray, "n D"], EmbeddingTiming]:
    """`embed_sequences` plus its wall time, compilation included (what a page pays)."""
    max_len = kwargs.get("max_len", 512)
    start = time.perf_counter()
    out = embed_sequences(model, sequences, **kwargs)
    seconds = time.perf_counter() - start
    n_tokens = sum(min(len(s), max_len - 2) + 2 for s in sequences)
    return out, EmbeddingTiming(seconds, len(sequences), n_tokens)


def embedding_throughput(
    model: ESM2, *, length: int = 256, batch_size: int = 32, repeat: int = 3, seed: int = 0
) -> float:
    """Steady-state sequences per second of `mean_embedding` on random proteins.

    Every sequence has `length` tokens (`<cls>` and `<eos>` included); compilation is
    excluded (best of `repeat` timed batches after a warm-up).
    """
    _check_sizes(length, batch_size, 1)
    tokens = jnp.asarray(random_tokens(batch_size, length, seed=seed))
    return batch_size / best_time(lambda: _embed_batch(model, tokens), repeat=repeat)
