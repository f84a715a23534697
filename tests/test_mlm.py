"""MLM masking, loss and perplexities."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.protein import (
    AMINO_ACID_IDS,
    CLS,
    EOS,
    ESM2,
    MASK,
    PAD,
    ESM2Config,
    batch_tokenize,
    is_residue,
    mask_tokens,
    masked_cross_entropy,
    masked_nll_per_sequence,
    masked_perplexity,
    tokenize,
    unigram_perplexity,
)

SMALL = ESM2Config(num_layers=1, embed_dim=16, num_heads=2, ffn_dim=32)


def _random_tokens(n_rows: int, length: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    body = rng.choice(AMINO_ACID_IDS, size=(n_rows, length - 2))
    return np.concatenate(
        [np.full((n_rows, 1), CLS), body, np.full((n_rows, 1), EOS)], axis=1
    ).astype(np.int32)


def test_masking_proportions_80_10_10():
    tokens = jnp.asarray(_random_tokens(64, 512))
    out = jax.jit(jax.vmap(mask_tokens))(jr.split(jr.key(0), 64), tokens)
    residues = np.asarray(is_residue(tokens))
    selected = np.asarray(out.selected)
    n = selected.sum()
    assert abs(n / residues.sum() - 0.15) < 0.005
    inputs, targets = np.asarray(out.inputs), np.asarray(out.targets)
    masked = (inputs == MASK) & selected
    unchanged = (inputs == targets) & selected
    # A random replacement can draw the original residue (1 in 20): count it as unchanged.
    replaced = selected & ~masked & ~unchanged
    assert abs(masked.sum() / n - 0.8) < 0.015
    assert abs(replaced.sum() / n - 0.1 * 19 / 20) < 0.01
    assert abs(unchanged.sum() / n - (0.1 + 0.1 / 20)) < 0.01
    assert np.isin(inputs[replaced], AMINO_ACID_IDS).all()
    # Nothing outside the selection changes; special tokens are never selected.
    assert (inputs[~selected] == targets[~selected]).all()
    assert not selected[~residues].any()
    np.testing.assert_array_equal(targets, np.asarray(tokens))


def test_masking_leaves_padding_and_specials_alone():
    tokens = jnp.asarray(batch_tokenize(["MKTAYIAKQR", "MK"], pad_to=16))
    out = jax.vmap(lambda k, t: mask_tokens(k, t, mask_prob=1.0))(jr.split(jr.key(1), 2), tokens)
    special = np.isin(np.asarray(tokens), [CLS, EOS, PAD])
    assert not np.asarray(out.selected)[special].any()
    assert np.asarray(out.selected)[~special].all()
    np.testing.assert_array_equal(np.asarray(out.inputs)[special], np.asarray(tokens)[special])


def test_masking_never_selects_masks_unknowns_or_gaps():
    tokens = jnp.asarray(tokenize("MK<mask>X<unk>-.BW"))
    out = mask_tokens(jr.key(2), tokens, mask_prob=1.0)
    np.testing.assert_array_equal(np.asarray(out.selected), np.asarray(is_residue(tokens)))
    assert np.asarray(out.selected).sum() == 5  # M, K, X, B, W


def test_masking_is_deterministic_in_the_key():
    t = jnp.asarray(tokenize("MKTAYIAKQRQISFVKSHFSRQ"))
    a, b = mask_tokens(jr.key(3), t), mask_tokens(jr.key(3), t)
    np.testing.assert_array_equal(np.asarray(a.inputs), np.asarray(b.inputs))
    with pytest.raises(ValueError, match="exceeds 1"):
        mask_tokens(jr.key(0), t, mask_frac=0.9, random_frac=0.2)


def test_masked_cross_entropy_counts_only_selected():
    logits = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]))
    targets = jnp.array([0, 1, 1])
    total, count = masked_cross_entropy(logits, targets, jnp.array([True, False, True]))
    assert int(count) == 2
    np.testing.assert_allclose(float(total), -np.log(0.5) - np.log(0.8), rtol=1e-6)


def test_masked_perplexity_matches_manual_and_ignores_filler_rows():
    model = ESM2(SMALL, key=jr.key(0))
    tokens = _random_tokens(5, 24)
    key = jr.key(7)
    ppl = masked_perplexity(model, tokens, key=key, batch_size=8)
    # By hand: the same corruption (one batch, fold_in(key, 0)) on the 3 filler-padded rows.
    padded = np.concatenate([tokens, np.full((3, 24), PAD, np.int32)])

    @eqx.filter_jit
    def by_hand(model, tokens):
        batch = jax.vmap(mask_tokens)(jr.split(jr.fold_in(key, 0), 8), tokens)
        logits = jax.vmap(lambda t: model(t).logits)(batch.inputs)
        return masked_cross_entropy(logits, batch.targets, batch.selected)

    total, count = by_hand(model, jnp.asarray(padded))
    np.testing.assert_allclose(ppl, np.exp(float(total) / int(count)), rtol=1e-5)
    # An untrained model is about as good as guessing among the 33 tokens.
    assert 10 < ppl < 60


def test_per_sequence_nll_adds_up_to_the_perplexity_with_the_same_masks():
    model = ESM2(SMALL, key=jr.key(0))
    tokens = _random_tokens(13, 24)  # two batches of 8, the second with filler rows
    key = jr.key(7)
    nll, count = masked_nll_per_sequence(model, tokens, key=key, batch_size=8)
    assert nll.shape == count.shape == (13,) and np.all(count > 0) and np.all(nll > 0)
    ppl = masked_perplexity(model, tokens, key=key, batch_size=8)
    np.testing.assert_allclose(np.exp(nll.sum() / count.sum()), ppl, rtol=1e-5)
    # A subset's perplexity is that of the same rows scored on their own only in expectation
    # (other masks), but its rows are scored exactly as in the whole.
    again, _ = masked_nll_per_sequence(model, tokens, key=key, batch_size=8)
    np.testing.assert_array_equal(nll, again)
    other, _ = masked_nll_per_sequence(model, tokens, key=jr.key(8), batch_size=8)
    assert not np.allclose(nll, other)
    with pytest.raises(ValueError, match="non-empty"):
        masked_nll_per_sequence(model, tokens[:0], key=key)


def test_unigram_perplexity_uniform_and_reference():
    tokens = batch_tokenize(["LA" * 50, "AL" * 50])
    assert unigram_perplexity(tokens, smoothing=0.0) == pytest.approx(2.0)
    # Under a reference where L is 3x as frequent as A, the same tokens cost more.
    ref = tokenize("LLLA" * 100)
    expected = np.exp(-(0.5 * np.log(0.75) + 0.5 * np.log(0.25)))
    assert unigram_perplexity(tokens, ref, smoothing=0.0) == pytest.approx(expected)
    # Add-one smoothing keeps an unseen residue finite.
    assert np.isfinite(unigram_perplexity(tokenize("W"), ref))
    # gaps are not residues: they are not scored, and get no pseudo-count
    assert unigram_perplexity(tokenize("AC--.")) == unigram_perplexity(tokenize("AC"))
    with pytest.raises(ValueError, match="no residues"):
        unigram_perplexity(np.array([CLS, EOS, PAD]))


def test_unigram_baseline_of_natural_proteins(staged):
    from tutorial_lib.data import read_fasta

    records = read_fasta(staged / "thermoprot" / "psychrophilic.fasta")
    tokens = np.concatenate([tokenize(r.sequence, unknown="X") for r in records[:2000]])
    assert 16.5 < unigram_perplexity(tokens) < 19.0
