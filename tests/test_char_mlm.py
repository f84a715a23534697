"""The character-level masked language model (`tutorial_lib.protein.char_mlm`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.protein.char_mlm import (
    CharMLM,
    CharVocab,
    english_text,
    evaluate_char_mlm,
    mask_characters,
    predict_masked,
    sample_windows,
    train_char_mlm,
    unigram_cross_entropy,
)

# --- characters, masking and the model --------------------------------------------------------


def test_vocab_round_trip_unknown_and_mask():
    vocab = CharVocab()
    ids = vocab.encode("Hello, World_ 42 {x}")
    assert ids.dtype == np.int32 and ids[12] == vocab.MASK
    assert vocab.decode(ids) == "hello, world_ 42 ?x?"
    assert (ids == vocab.UNKNOWN).sum() == 2
    with pytest.raises(ValueError, match=r"character '\{' at position 17"):
        vocab.encode("Hello, World_ 42 {x}", strict=True)
    with pytest.raises(ValueError, match="not in chars"):
        CharVocab(chars="ab_")
    with pytest.raises(TypeError):
        vocab.encode(b"bytes")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 49\)"):
        vocab.decode(np.array([0, 49]))


def test_english_text_is_deterministic_plain_prose():
    text = english_text()
    assert text == english_text()
    assert len(text) > 100_000
    assert text == text.lower() and "_" not in text and "  " not in text
    ids = CharVocab().encode(text)
    assert (ids == CharVocab.UNKNOWN).mean() < 0.02  # almost all of it is in the vocabulary
    assert " the " in text


def test_masking_proportions_and_specials():
    vocab = CharVocab()
    ids = jnp.asarray(vocab.encode("a_c?" * 2000))  # half the positions are mask / unknown
    keys = jr.split(jr.key(0), 16)
    b = jax.vmap(lambda k: mask_characters(k, ids, vocab_size=vocab.size, rate=0.3))(keys)
    chars = np.asarray(ids) >= vocab.FIRST_CHAR
    scored = np.asarray(b.selected)
    assert not scored[:, ~chars].any()
    assert abs(scored.mean() / chars.mean() - 0.3) < 0.01
    inputs = np.asarray(b.inputs)
    n = scored.sum()
    assert abs((inputs[scored] == vocab.MASK).sum() / n - 0.8) < 0.02
    changed = (inputs != np.asarray(b.targets)) & scored & (inputs != vocab.MASK)
    assert abs(changed.sum() / n - 0.1 * (1 - 1 / 47)) < 0.015
    assert (inputs[~scored] == np.broadcast_to(ids, inputs.shape)[~scored]).all()
    with pytest.raises(ValueError, match="fractions"):
        mask_characters(jr.key(0), ids, vocab_size=vocab.size, mask_frac=0.95, random_frac=0.1)


def test_unigram_cross_entropy():
    ids = np.repeat(np.arange(2, 6), 50)  # four characters, equally often
    assert unigram_cross_entropy(ids, vocab_size=10, smoothing=0.0) == pytest.approx(np.log(4))
    # Frequencies from another text cost more than the text's own.
    other = np.repeat(np.arange(2, 6), [100, 10, 10, 10])
    assert unigram_cross_entropy(ids, other, vocab_size=10) > np.log(4) + 0.1


def test_char_mlm_shapes_batching_and_errors():
    model = CharMLM(20, dim=16, num_heads=2, num_layers=2, positions="rotary", key=jr.key(0))
    ids = jr.randint(jr.key(1), (3, 10), 2, 20)
    out = eqx.filter_jit(model)(ids[0])
    assert out.logits.shape == (10, 20) and out.hidden.shape == (10, 16)
    assert out.attentions.shape == (2, 2, 10, 10)
    np.testing.assert_allclose(out.attentions.sum(-1), 1.0, rtol=1e-5)
    batched = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))(model, ids)
    np.testing.assert_allclose(batched.logits[0], out.logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"jax\.vmap"):
        model(ids)
    with pytest.raises(ValueError, match="'sinusoidal' or 'rotary'"):
        CharMLM(20, positions="learned", key=jr.key(0))
    with pytest.raises(ValueError, match="fewer than length"):
        sample_windows(jr.key(0), ids[0], 2, 20)


def test_training_beats_the_unigram_baseline():
    # A text whose letters are predictable from their neighbours, not from their frequency.
    words = ["cat", "dog", "owl", "bee", "yak", "emu", "ant", "gnu"]
    rng = np.random.default_rng(0)
    vocab = CharVocab()
    ids = vocab.encode(" ".join(rng.choice(words, 3000)))
    baseline = unigram_cross_entropy(ids, vocab_size=vocab.size)
    model = CharMLM(vocab.size, dim=32, num_heads=4, num_layers=1, positions="rotary",
                    key=jr.key(0))  # fmt: skip
    before, _ = evaluate_char_mlm(model, ids, key=jr.key(2), num_batches=2, length=24)
    model, losses = train_char_mlm(
        model, ids, key=jr.key(1), steps=200, batch_size=16, length=24, learning_rate=1e-2,
        rate=0.25,
    )  # fmt: skip
    after, accuracy = evaluate_char_mlm(model, ids, key=jr.key(2), num_batches=2, length=24)
    assert losses.shape == (200,) and np.isfinite(losses).all()
    assert before > baseline  # an untrained model is worse than counting letters
    assert after < 0.5 * baseline, (after, baseline)
    assert accuracy > 0.6
    # Fill in a blank: "c_t" can only be "cat" among these words.
    [(pos, guesses)] = predict_masked(model, vocab, "yak bee c_t dog owl emu")
    assert pos == 9 and guesses[0][0] == "a"
    probs = [p for _, p in guesses]
    assert probs == sorted(probs, reverse=True)
    with pytest.raises(ValueError, match="no '_'"):
        predict_masked(model, vocab, "no blanks here")
