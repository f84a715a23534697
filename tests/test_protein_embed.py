"""Mean-pooled ESM2 embeddings: padding invariance, batching, cropping, input checks.

Every forward pass is jitted and the token shapes are few, to keep compilation (not the
arithmetic) from dominating the run time.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from random_esm2 import random_esm2

from tutorial_lib.protein import PAD, ESM2Config, tokenize
from tutorial_lib.protein.embed import (
    centre_crop,
    embed_sequences,
    embedding_throughput,
    mean_embedding,
    timed_embed_sequences,
)

SMALL = ESM2Config(num_layers=2, embed_dim=16, num_heads=2, ffn_dim=32)
SEQS = ["MKTAYIAKQR", "GSHMLE", "ACDEFGHIKLMNPQRSTVWYACDEFG", "W", "PPGGKKLLEE"]
SIZES = {"max_len": 32, "batch_size": 8, "bucket": 16}  # shapes (8, 16) and (8, 32)


@pytest.fixture(scope="module")
def model():
    return random_esm2(SMALL, 0)


@eqx.filter_jit
def _hidden_and_mean(model, tokens):
    return model(tokens).hidden, mean_embedding(model, tokens)


def _padded(seq: str, length: int = 32) -> jnp.ndarray:
    tokens = tokenize(seq)
    return jnp.asarray(np.concatenate([tokens, np.full(length - len(tokens), PAD, np.int32)]))


def test_mean_embedding_is_the_residue_mean_and_ignores_padding(model):
    tokens = jnp.asarray(tokenize("MKTAYIAKQR"))
    hidden, mean = _hidden_and_mean(model, tokens)
    assert mean.shape == (16,)
    np.testing.assert_allclose(mean, hidden[1:-1].mean(0), atol=1e-6)
    _, padded_mean = _hidden_and_mean(model, _padded("MKTAYIAKQR"))
    np.testing.assert_allclose(padded_mean, mean, atol=1e-5)
    # an all-padding row is finite (zeros), not NaN
    _, empty = _hidden_and_mean(model, jnp.full(32, PAD, jnp.int32))
    np.testing.assert_array_equal(empty, np.zeros(16))
    # a masked position is not a residue (`is_residue`): it is left out of the mean
    masked = jnp.asarray(tokenize("MK<mask>AYIAKQR"))
    hidden, mean = _hidden_and_mean(model, masked)
    np.testing.assert_allclose(
        mean, np.delete(np.asarray(hidden[1:-1]), 2, axis=0).mean(0), atol=1e-6
    )


def test_embed_sequences_keeps_order_and_ignores_batching(model):
    ref = np.stack([np.asarray(_hidden_and_mean(model, _padded(s))[1]) for s in SEQS])
    out = embed_sequences(model, SEQS, **SIZES)
    assert out.shape == (5, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-5)
    one_bucket = embed_sequences(model, SEQS, max_len=32, batch_size=8, bucket=32)
    np.testing.assert_allclose(one_bucket, out, atol=1e-5)
    assert embed_sequences(model, [], **SIZES).shape == (0, 16)


def test_long_sequences_are_centre_cropped(model):
    assert centre_crop("ABCDEFG", 3) == "CDE"
    assert centre_crop("ABCDEF", 3) == "BCD"  # odd excess: one more dropped at the end
    assert centre_crop("ABC", 5) == "ABC"
    long = "MKTAYIAKQRQISFVKSHFSRQ"  # 22 residues; max_len 16 keeps the middle 14
    cropped = embed_sequences(model, [long], max_len=16, batch_size=8, bucket=16)
    direct = embed_sequences(model, [long[4:18]], **SIZES)
    np.testing.assert_allclose(cropped, direct, atol=1e-6)
    assert not np.allclose(cropped, embed_sequences(model, [long], **SIZES), atol=1e-3)


def test_unusual_letters_become_x_and_other_characters_raise(model):
    out = embed_sequences(model, ["MKJL", "MKXL"], **SIZES)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    with pytest.raises(ValueError, match="sequence 1"):
        embed_sequences(model, ["MKL", "MK1L"])
    with pytest.raises(ValueError, match="invalid residue 'J'"):
        embed_sequences(model, ["MKJL"], unknown=None)
    with pytest.raises(ValueError, match="non-empty"):
        embed_sequences(model, ["MKL", ""])
    with pytest.raises(TypeError):
        embed_sequences(model, "MKL")
    with pytest.raises(ValueError, match="max_len"):
        embed_sequences(model, ["MKL"], max_len=2)


def test_timing_and_throughput(model):
    out, timing = timed_embed_sequences(model, SEQS, **SIZES)
    assert out.shape == (5, 16)
    assert timing.n_sequences == 5
    assert timing.n_tokens == sum(len(s) + 2 for s in SEQS)
    assert timing.sequences_per_s > 0 and timing.tokens_per_s > timing.sequences_per_s
    assert embedding_throughput(model, length=16, batch_size=8, repeat=1) > 0
