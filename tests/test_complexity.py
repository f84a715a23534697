"""The design alphabet check and the low-complexity guards (`tutorial_lib.protein.complexity`)."""

import jax.numpy as jnp
import numpy as np
import pytest

from tutorial_lib.protein import STANDARD_AMINO_ACIDS, tokenize
from tutorial_lib.protein.complexity import (
    SEG_THRESHOLD,
    check_sequence,
    complexity_penalty,
    guard,
    window_entropy,
)

UBIQUITIN = "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG"


def _min_window_entropy(seq: str, window: int) -> float:
    """The lowest composition entropy (bits) of any `window` consecutive residues, by loops."""
    w = min(window, len(seq))
    best = np.inf
    for start in range(len(seq) - w + 1):
        _, counts = np.unique(list(seq[start : start + w]), return_counts=True)
        p = counts / w
        best = min(best, float(-(p * np.log2(p)).sum()))
    return best


def test_check_sequence():
    assert check_sequence("mkT") == "MKT"
    with pytest.raises(ValueError, match="non-standard residues 'BX'"):
        check_sequence("MKXLB")
    with pytest.raises(ValueError, match="empty"):
        check_sequence("")
    with pytest.raises(TypeError):
        check_sequence(["M"])


def test_window_entropy_values():
    h = np.asarray(window_entropy(jnp.asarray(tokenize("ACDEFGHIKLMN" + "A" * 12))))
    assert np.isclose(h[1], np.log2(12))  # the first 12 residues, all different
    assert np.isclose(h[-2], 0.0)  # the last 12: all A
    assert np.isclose(h[0], np.log2(12)) and np.isclose(h[-1], np.log2(12))  # <cls>, <eos>
    assert np.isclose(float(np.min(window_entropy(jnp.asarray(tokenize("KE" * 12))))), 1.0)
    # 19 windows of entropy 0, each 2.2 bits short.
    penalty = complexity_penalty(jnp.asarray(tokenize("A" * 30)))
    assert np.isclose(float(penalty), 19 * SEG_THRESHOLD, atol=1e-4)


@pytest.mark.parametrize(
    "seq",
    [UBIQUITIN, "KE" * 20, "A" * 40, "ACDEFGH" * 6, "MKT", "W", UBIQUITIN[:12], UBIQUITIN[:13]]
    + ["".join(np.random.default_rng(i).choice(list(STANDARD_AMINO_ACIDS), 50)) for i in range(5)],
)
def test_guard_uses_the_window_entropy_of_the_sequence(seq):
    assert guard(seq).min_window_entropy == pytest.approx(_min_window_entropy(seq, 12), abs=1e-5)


@pytest.mark.parametrize(
    "seq, flagged",
    [
        ("A" * 40, True),
        ("KE" * 20, True),
        ("ACDEFGH" * 6, True),  # a period-7 repeat: complex windows, but periodic
        (UBIQUITIN[:30] + "QQQQQQQQ" + UBIQUITIN[30:], True),  # a homopolymer run
        (UBIQUITIN, False),
    ],
)
def test_guard_flags_degenerate_sequences_only(seq, flagged):
    g = guard(seq)
    assert g.flagged is flagged
    if seq == UBIQUITIN:
        assert g.min_window_entropy > 2.5 and g.longest_run <= 2 and g.max_periodicity < 0.2
