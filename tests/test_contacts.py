"""Contact maps: APC, attention features of the contact head, coordinates, precision."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.protein import ESM2Config, tokenize
from tutorial_lib.protein.contacts import (
    apc,
    attention_contact_maps,
    contact_map_from_coords,
    contact_precision,
    mass_by_separation,
    separation_mask,
    symmetrize,
    top_pairs,
)
from tutorial_lib.protein.esm2 import ContactHead


def _apc_reference(f: np.ndarray) -> np.ndarray:
    """Dunn et al. (2008), written out with explicit loops."""
    n = f.shape[0]
    out = np.empty_like(f)
    total = f.sum()
    for i in range(n):
        for j in range(n):
            out[i, j] = f[i, j] - f[i, :].sum() * f[:, j].sum() / total
    return out


def test_apc_matches_numpy_reference():
    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 7, 7))
    got = np.asarray(apc(maps))
    for idx in np.ndindex(2, 3):
        np.testing.assert_allclose(got[idx], _apc_reference(maps[idx]), rtol=1e-5, atol=1e-6)


def test_apc_removes_a_rank_one_background():
    rng = np.random.default_rng(1)
    u, v = rng.random(9), rng.random(9)
    np.testing.assert_allclose(apc(np.outer(u, v)), 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="square"):
        apc(np.zeros((3, 4)))


def test_symmetrize():
    x = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(symmetrize(x), x + x.T)


def test_attention_contact_maps_are_the_contact_head_features():
    """With a one-hot regression, ESM2's contact head returns sigmoid(one feature map)."""
    config = ESM2Config(num_layers=2, embed_dim=16, num_heads=2, ffn_dim=32)
    tokens = jnp.asarray(tokenize("MKTAYIAKQRQISF"))
    length = tokens.shape[0]
    logits = np.random.default_rng(0).normal(size=(2, 2, length, length))
    attentions = jax.nn.softmax(jnp.asarray(logits, dtype=jnp.float32), axis=-1)
    maps = attention_contact_maps(attentions, tokens)
    assert maps.shape == (2, 2, 14, 14)
    np.testing.assert_allclose(maps, jnp.swapaxes(maps, -1, -2), atol=1e-6)
    channel = 3  # layer 1, head 1
    # The shapes only (no random init: compiling threefry is slow on a busy CPU), then weights.
    head = eqx.filter_eval_shape(ContactHead, config, key=jr.key(1))
    head = eqx.tree_at(
        lambda h: (h.regression.weight, h.regression.bias),
        head,
        (jnp.eye(4)[channel][None], jnp.zeros(1)),
    )
    expected = 1 / (1 + np.exp(-np.asarray(maps[1, 1])))
    np.testing.assert_allclose(head(tokens, attentions), expected, rtol=1e-5, atol=1e-6)


def test_attention_contact_maps_checks_its_inputs():
    tokens = jnp.asarray(tokenize("MKTAY"))
    with pytest.raises(ValueError, match="layers, heads, L, L"):
        attention_contact_maps(jnp.zeros((1, 1, 5, 5)), tokens)
    with pytest.raises(ValueError, match="<cls>"):
        attention_contact_maps(jnp.zeros((1, 1, 5, 5)), tokens[1:-1])


def test_separation_mask_and_mass_by_separation():
    mask = separation_mask(5, 2)
    assert mask.sum() == 2 * (3 + 2 + 1)
    assert not mask[1, 2] and mask[1, 3] and mask[3, 1]
    m = np.add.outer(np.arange(4.0), np.arange(4.0))  # m[i, j] = i + j
    prof = mass_by_separation(m)
    # separation s: pairs (i, i+s), mean of 2i + s over i = 0..3-s.
    np.testing.assert_allclose(prof, [3.0, 3.0, 3.0, 3.0])
    np.testing.assert_allclose(mass_by_separation(np.eye(4)[None]), [[1.0, 0, 0, 0]])
    assert mass_by_separation(m, max_sep=1).shape == (2,)


def test_top_pairs_respects_separation_and_order():
    s = np.zeros((10, 10))
    s[0, 9] = s[9, 0] = 3.0
    s[2, 3] = 10.0  # too close
    s[1, 8] = 2.0
    pairs = top_pairs(s, 2, min_sep=6)
    np.testing.assert_array_equal(pairs, [[0, 9], [1, 8]])
    with pytest.raises(ValueError, match="only 10"):
        top_pairs(s, 11, min_sep=6)


def test_contact_map_from_coords_on_a_straight_chain():
    # C-alphas 3.8 Å apart on a line: neighbours at 3.8 and 7.6 Å are contacts, 11.4 Å not.
    ca = np.zeros((6, 3))
    ca[:, 0] = 3.8 * np.arange(6)
    c = contact_map_from_coords(ca)
    sep = np.abs(np.subtract.outer(np.arange(6), np.arange(6)))
    np.testing.assert_array_equal(c, sep <= 2)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        contact_map_from_coords(np.zeros((4, 2)))


def test_contact_map_of_a_hairpin():
    # Two antiparallel strands 4.8 Å apart: i pairs with 19 - i across the sheet.
    x = 3.4 * np.concatenate([np.arange(10), np.arange(9, -1, -1)])
    y = np.concatenate([np.zeros(10), 4.8 * np.ones(10)])
    c = contact_map_from_coords(np.stack([x, y, np.zeros(20)], axis=1))
    assert all(c[i, 19 - i] for i in range(10))
    assert not c[0, 10]  # far along the other strand


def test_contact_precision():
    n = 20
    truth = np.zeros((n, n), dtype=bool)
    truth[0, 15] = truth[15, 0] = truth[2, 12] = truth[12, 2] = True
    scores = np.zeros((n, n))
    scores[0, 15] = 5.0  # right
    scores[3, 17] = 4.0  # wrong
    assert contact_precision(scores, truth, k=2) == 0.5
    assert contact_precision(scores, truth) == 0.25  # k = n // 5 = 4: ties at 0 are misses
    with pytest.raises(ValueError, match="differ"):
        contact_precision(scores[:5, :5], truth)
