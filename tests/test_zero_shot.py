"""Masked-marginal mutation scores and the GB1 position mapping."""

import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from random_esm2 import random_esm2

from tutorial_lib.protein import (
    AMINO_ACID_IDS,
    MASK,
    STANDARD_AMINO_ACIDS,
    ESM2Config,
    tokenize,
)
from tutorial_lib.protein.zero_shot import (
    gb1_construct_positions,
    masked_marginal_scores,
    mutated_positions,
    score_variants,
)

WT = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
POS = (3, 10, 17)


@pytest.fixture(scope="module")
def model():
    return random_esm2(ESM2Config(num_layers=2, embed_dim=16, num_heads=2, ffn_dim=32), 1)


@pytest.fixture(scope="module")
def table(model):
    return masked_marginal_scores(model, WT, POS)


def _mutate(seq, changes):
    s = list(seq)
    for i, a in changes.items():
        s[i] = a
    return "".join(s)


def test_table_is_the_masked_log_softmax(model, table):
    assert table.shape == (3, 20)
    tokens = tokenize(WT)
    for p in POS:
        tokens[p + 1] = MASK
    logits = eqx.filter_jit(lambda m, t: m(t).logits)(model, jnp.asarray(tokens))
    direct = jax.nn.log_softmax(logits, axis=-1)[np.array(POS) + 1][:, list(AMINO_ACID_IDS)]
    np.testing.assert_allclose(table, direct, atol=1e-5)
    assert np.all(np.exp(table).sum(1) <= 1.0 + 1e-6)


def test_scores_are_additive_log_ratios(table):
    col = STANDARD_AMINO_ACIDS.index
    single = _mutate(WT, {10: "W"})
    double = _mutate(WT, {3: "G", 17: "D"})
    scores = score_variants(table, WT, POS, [WT, single, double])
    assert scores[0] == 0.0
    assert scores[1] == pytest.approx(table[1, col("W")] - table[1, col(WT[10])], abs=1e-6)
    expected = (
        table[0, col("G")] - table[0, col(WT[3])] + table[2, col("D")] - table[2, col(WT[17])]
    )
    assert scores[2] == pytest.approx(expected, abs=1e-6)
    assert scores[1] != 0.0


def test_bad_inputs_raise(model, table):
    with pytest.raises(ValueError, match="not one of the scored positions"):
        score_variants(table, WT, POS, [_mutate(WT, {4: "W"})])
    with pytest.raises(ValueError, match="length"):
        score_variants(table, WT, POS, [WT[:-1]])
    with pytest.raises(ValueError, match="non-standard"):
        score_variants(table, WT, POS, [_mutate(WT, {3: "X"})])
    with pytest.raises(ValueError, match="shape"):
        score_variants(table[:2], WT, POS, [WT])
    with pytest.raises(ValueError, match="1-based"):
        masked_marginal_scores(model, WT, [len(WT)])
    with pytest.raises(ValueError, match="distinct"):
        masked_marginal_scores(model, WT, [3, 3])
    with pytest.raises(ValueError, match="standard amino acids"):
        masked_marginal_scores(model, "MKXL", [0])


def _fake_gb1(offset):
    """A GB1-like landscape: domain residue r (1-based) sits at string index r - 1 + offset."""
    rng = np.random.default_rng(0)
    background = list(rng.choice(list(STANDARD_AMINO_ACIDS), size=80))
    positions = (39, 40, 41, 54)
    variants = ["VDGV", "ADGV", "VDGW", "LLLL"]
    seqs = []
    for v in variants:
        s = list(background)
        for p, a in zip(positions, v, strict=True):
            s[p - 1 + offset] = a
        seqs.append("".join(s))
    return types.SimpleNamespace(
        variants=variants, sequences=seqs, wild_type="VDGV", positions=positions
    )


def test_gb1_position_mapping_on_synthetic_constructs():
    assert gb1_construct_positions(_fake_gb1(0)) == (38, 39, 40, 53)
    assert gb1_construct_positions(_fake_gb1(5)) == (43, 44, 45, 58)
    assert mutated_positions("ABCD", ["ABCD", "AXCD", "ABCY"]) == (1, 3)


def test_gb1_position_mapping_on_the_data(staged):
    from tutorial_lib.data import load_gb1

    gb1 = load_gb1()
    positions = gb1_construct_positions(gb1)
    assert positions == tuple(p - 1 for p in gb1.positions) == (38, 39, 40, 53)
    wt = gb1.sequences[gb1.variants.index("VDGV")]
    assert "".join(wt[i] for i in positions) == "VDGV"
    assert wt.startswith("MQYKLILNGK")  # GB1 domain, Met-1 first
