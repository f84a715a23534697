"""The ESM alphabet and tokenisation."""

import numpy as np
import pytest

from tutorial_lib.data import PROTEIN_ALPHABET
from tutorial_lib.protein import (
    AMINO_ACID_IDS,
    CLS,
    COMPOSITION_ALPHABET,
    EOS,
    MASK,
    PAD,
    RESIDUE_IDS,
    STANDARD_AMINO_ACIDS,
    TOKENS,
    UNK,
    VOCAB_SIZE,
    batch_tokenize,
    detokenize,
    is_residue,
    random_tokens,
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


def test_one_spelling_of_the_amino_acids():
    # The ESM token order is the one spelling; the alphabetical order is derived from it.
    assert COMPOSITION_ALPHABET == "".join(sorted(STANDARD_AMINO_ACIDS)) == "ACDEFGHIKLMNPQRSTVWY"
    assert set(STANDARD_AMINO_ACIDS) <= set(PROTEIN_ALPHABET)  # what a FASTA file may hold


def test_a_residue_is_an_amino_acid_token():
    residues = [t for t in TOKENS if t in STANDARD_AMINO_ACIDS + "XBUZO"]
    assert [TOKENS[i] for i in RESIDUE_IDS] == residues and len(residues) == 25
    t = tokenize("MK<mask>X<unk>-.B")
    assert np.asarray(is_residue(t)).tolist() == [
        False,  # <cls>
        True,
        True,
        False,  # <mask>: a hidden residue is not one
        True,  # X: an unknown amino acid is one
        False,  # <unk>: not a token of the alphabet
        False,  # alignment gaps
        False,
        True,
        False,  # <eos>
    ]
    assert not np.asarray(is_residue(np.array([PAD, TOKENS.index("<null_1>")]))).any()


def test_random_tokens():
    t = random_tokens(3, 10, seed=1)
    assert t.shape == (3, 10) and t.dtype == np.int32
    assert (t[:, 0] == CLS).all() and (t[:, -1] == EOS).all()
    assert np.isin(t[:, 1:-1], AMINO_ACID_IDS).all()
    np.testing.assert_array_equal(t, random_tokens(3, 10, seed=1))
    with pytest.raises(ValueError, match="length >= 3"):
        random_tokens(3, 2)


def test_esm_token_order_holds_the_same_twenty_amino_acids_as_the_data_alphabet():
    from tutorial_lib.data import AMINO_ACIDS
    from tutorial_lib.protein import STANDARD_AMINO_ACIDS

    assert sorted(STANDARD_AMINO_ACIDS) == list(AMINO_ACIDS) and len(set(AMINO_ACIDS)) == 20
