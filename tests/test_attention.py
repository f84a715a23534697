"""Attention, positions and the pre-LN block (`tutorial_lib.protein.attention`)."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.protein.attention import (
    EncoderBlock,
    MultiHeadAttention,
    apply_rotary,
    scaled_dot_product_attention,
    sinusoidal_positions,
)


def _numpy_attention(q, k, v, mask=None):
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    scores = q @ k.T / np.sqrt(q.shape[1])
    if mask is not None:
        scores = np.where(np.broadcast_to(mask, scores.shape), scores, -np.inf)
    w = np.exp(scores - scores.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return w @ v, w


def _qkv(lq=5, lk=7, d=8, dv=3, seed=0):
    kq, kk, kv = jr.split(jr.key(seed), 3)
    return jr.normal(kq, (lq, d)), jr.normal(kk, (lk, d)), jr.normal(kv, (lk, dv))


# --- scaled dot-product attention -------------------------------------------------------------


def test_attention_matches_numpy_and_rows_sum_to_one():
    q, k, v = _qkv()
    out, w = scaled_dot_product_attention(q, k, v)
    ref_out, ref_w = _numpy_attention(q, k, v)
    np.testing.assert_allclose(w, ref_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    assert out.shape == (5, 3) and w.shape == (5, 7)


@pytest.mark.parametrize("mask_shape", [(7,), (5, 7)])
def test_masked_keys_get_zero_weight(mask_shape):
    q, k, v = _qkv()
    mask = np.array(jr.bernoulli(jr.key(3), 0.6, mask_shape))
    mask[..., 0] = True  # every query sees at least one key
    out, w = scaled_dot_product_attention(q, k, v, jnp.asarray(mask))
    full = np.broadcast_to(mask, (5, 7))
    assert (np.asarray(w)[~full] == 0.0).all()
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    ref_out, ref_w = _numpy_attention(q, k, v, mask)
    np.testing.assert_allclose(w, ref_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-6)


def test_query_that_sees_nothing_gets_zeros_not_nan():
    q, k, v = _qkv()
    mask = jnp.ones((5, 7), bool).at[2].set(False)
    out, w = scaled_dot_product_attention(q, k, v, mask)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(w[2], 0.0)
    np.testing.assert_array_equal(out[2], 0.0)


def test_scaling_keeps_score_variance_near_one():
    # Why the 1/sqrt(d): dot products of random unit-variance vectors have variance d.
    q, k, _ = _qkv(lq=400, lk=400, d=256)
    scaled = (q @ k.T) / np.sqrt(256)
    assert 0.9 < float(jnp.var(scaled)) < 1.1


def test_attention_shape_errors_are_explained():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="dimension 8 but keys 4"):
        scaled_dot_product_attention(q, k[:, :4], v)
    with pytest.raises(ValueError, match="7 keys but 6 values"):
        scaled_dot_product_attention(q, k, v[:6])
    with pytest.raises(ValueError, match=r"jax\.vmap"):
        scaled_dot_product_attention(q[None], k, v)
    with pytest.raises(ValueError, match="mask has shape"):
        scaled_dot_product_attention(q, k, v, jnp.ones((3,), bool))


# --- multi-head attention and positions -------------------------------------------------------


def test_one_head_is_single_head_attention_on_projections():
    mha = MultiHeadAttention(12, 1, key=jr.key(0))
    x = jr.normal(jr.key(1), (6, 12))
    out, w = mha(x)
    ref, ref_w = scaled_dot_product_attention(mha.query(x), mha.key(x), mha.value(x))
    np.testing.assert_allclose(w[0], ref_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, mha.output(ref), rtol=1e-5, atol=1e-6)


def test_heads_attend_on_separate_feature_slices():
    mha = MultiHeadAttention(12, 3, key=jr.key(0))
    x = jr.normal(jr.key(1), (6, 12))
    out, w = mha(x)
    q, k, v = (np.asarray(f(x)) for f in (mha.query, mha.key, mha.value))
    heads = []
    for h in range(3):
        s = slice(4 * h, 4 * h + 4)
        o, wh = _numpy_attention(q[:, s], k[:, s], v[:, s])
        np.testing.assert_allclose(w[h], wh, rtol=1e-5, atol=1e-6)
        heads.append(o)
    np.testing.assert_allclose(out, mha.output(jnp.asarray(np.concatenate(heads, 1))), atol=1e-5)


def test_attention_without_positions_ignores_order_rotary_does_not():
    x = 10.0 * jr.normal(jr.key(1), (8, 16))  # large enough for non-uniform attention
    perm = np.asarray(jr.permutation(jr.key(2), 8))
    plain = eqx.filter_jit(MultiHeadAttention(16, 4, key=jr.key(0)))
    np.testing.assert_allclose(plain(x[perm])[0], plain(x)[0][perm], rtol=1e-5, atol=1e-5)
    assert float(jnp.std(plain(x)[1])) > 0.01  # the check above is not about uniform weights
    rotary = eqx.filter_jit(MultiHeadAttention(16, 4, rotary=True, key=jr.key(0)))
    gap = np.abs(np.asarray(rotary(x[perm])[0] - rotary(x)[0][perm])).max()
    assert gap > 1e-2


def test_rotary_scores_depend_only_on_relative_offset():
    length, d = 12, 8
    q0, k0 = jr.normal(jr.key(0), (2, d))
    q = apply_rotary(jnp.tile(q0, (length, 1, 1)))  # the same query at every position
    k = apply_rotary(jnp.tile(k0, (length, 1, 1)))
    scores = np.asarray(jnp.einsum("mhd,nhd->mn", q, k))
    for offset in range(-length + 1, length):
        diag = np.diagonal(scores, offset)
        np.testing.assert_allclose(diag, diag[0], rtol=1e-4, atol=1e-5)
    # ... and it does depend on the offset: position 0 alone would be a constant matrix.
    assert np.ptp(scores[0]) > 0.1


def test_sinusoidal_positions_match_the_formula():
    length, dim = 20, 10
    p = np.asarray(sinusoidal_positions(length, dim))
    ref = np.zeros((length, dim))
    for pos in range(length):
        for i in range(dim // 2):
            angle = pos / 10000 ** (2 * i / dim)
            ref[pos, 2 * i], ref[pos, 2 * i + 1] = np.sin(angle), np.cos(angle)
    np.testing.assert_allclose(p, ref, atol=1e-5)
    # Dot products of the code depend only on the offset: sum_i cos(offset * w_i).
    gram = p @ p.T
    np.testing.assert_allclose(np.diagonal(gram, 3), np.diagonal(gram, 3)[0], atol=1e-4)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 5)


def test_mha_config_errors():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        MultiHeadAttention(10, 3, key=jr.key(0))
    with pytest.raises(ValueError, match="must be even"):
        MultiHeadAttention(12, 4, rotary=True, key=jr.key(0))
    mha = MultiHeadAttention(8, 2, key=jr.key(0))
    with pytest.raises(ValueError, match=r"shape \(L, 8\)"):
        mha(jnp.ones((3, 6)))


def test_pre_ln_block_has_a_clean_residual_path():
    block = EncoderBlock(16, 4, key=jr.key(0))
    x = 5.0 * jr.normal(jr.key(1), (6, 16))

    # Zero the last layer of each branch: the block must then be exactly the identity.
    def last_layers(b):
        return b.attn.output.weight, b.mlp.layers[-1].weight, b.mlp.layers[-1].bias

    quiet = eqx.tree_at(last_layers, block, replace_fn=jnp.zeros_like)
    out, w = eqx.filter_jit(quiet)(x)
    np.testing.assert_array_equal(out, x)
    assert w.shape == (4, 6, 6)
    # With the weights in place the block does change x.
    assert float(jnp.abs(eqx.filter_jit(block)(x)[0] - x).max()) > 1e-3
