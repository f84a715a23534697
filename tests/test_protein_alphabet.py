"""The ESM alphabet and tokenisation."""

import numpy as np
import pytest

from tutorial_lib.protein import (
    AMINO_ACID_IDS,
    CLS,
    EOS,
    MASK,
    PAD,
    TOKENS,
    UNK,
    VOCAB_SIZE,
    batch_tokenize,
    detokenize,
    tokenize,
)


def test_alphabet_layout():
    assert VOCAB_SIZE == 33
    assert (CLS, PAD, EOS, UNK, MASK) == (0, 1, 2, 3, 32)
    assert TOKENS[4:24] == tuple("LAGVSERTIDPKQNFYMHWC")
    assert TOKENS[24:31] == tuple("XBUZO.-")
    assert TOKENS[31] == "<null_1>"
    assert AMINO_ACID_IDS == tuple(range(4, 24))


def test_alphabet_matches_transformers_esm_vocab():
    esm = pytest.importorskip("transformers.models.esm.configuration_esm")
    assert tuple(esm.get_default_vocab_list()) == TOKENS


def test_tokenize_adds_cls_eos_and_is_case_insensitive():
    t = tokenize("MKla")
    assert t.dtype == np.int32
    assert t.tolist() == [CLS, TOKENS.index("M"), TOKENS.index("K"), 4, 5, EOS]


def test_tokenize_inline_special_tokens():
    t = tokenize("MK<mask>L<unk>")
    assert t.tolist() == [CLS, TOKENS.index("M"), TOKENS.index("K"), MASK, 4, UNK, EOS]
    assert detokenize(t) == "MKL"
    assert detokenize(t, keep_special=True) == "<cls>MK<mask>L<unk><eos>"


def test_tokenize_rejects_invalid_residue_with_a_clear_message():
    with pytest.raises(ValueError, match=r"invalid residue 'J' at position 3") as e:
        tokenize("MKJL")
    assert "unknown='X'" in str(e.value)
    with pytest.raises(ValueError, match="invalid residue '1'"):
        tokenize("AC1")
    with pytest.raises(TypeError):
        tokenize(["MK"])


def test_tokenize_unknown_substitute():
    assert tokenize("MJ", unknown="X").tolist()[2] == TOKENS.index("X")
    assert tokenize("MJ", unknown="<unk>").tolist()[2] == UNK
    with pytest.raises(ValueError, match="not a token"):
        tokenize("MJ", unknown="J")


def test_batch_tokenize_pads_right():
    b = batch_tokenize(["MK", "MKTA", ""])
    assert b.shape == (3, 6)
    assert b[0].tolist() == [CLS, TOKENS.index("M"), TOKENS.index("K"), EOS, PAD, PAD]
    assert b[2].tolist() == [CLS, EOS, PAD, PAD, PAD, PAD]
    assert batch_tokenize(["MK"], pad_to=8).shape == (1, 8)


def test_batch_tokenize_errors():
    with pytest.raises(ValueError, match="pad_to=4 is shorter"):
        batch_tokenize(["MKTAY"], pad_to=4)
    with pytest.raises(TypeError, match="list of sequences"):
        batch_tokenize("MKTAY")
