"""Zero-shot mutation effects from a masked language model: masked marginals.

Meier et al. (2021) score a variant without any fitness data. Mask every position that any
variant mutates, run the model once, and read off log-probabilities of the 20 amino acids
there; a variant then scores

    sum over mutated sites i of  log p(x_i = mut | x_masked) - log p(x_i = wt | x_masked),

an additive model (no epistasis) whose sign says whether the model finds the mutant residues
more (> 0) or less (< 0) plausible than the wild type in this context. The wild type scores 0.

Positions here are 0-based indices into the wild-type *string*; the token index is one more,
because of `<cls>`. For GB1 (Wu et al. 2016) FLIP's 265-residue construct starts with the
GB1 domain's Met-1, so the domain's residue numbers 39, 40, 41 and 54 are string indices
38, 39, 40 and 53: `gb1_construct_positions` derives them from the data instead of trusting
that.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from tutorial_lib.protein.alphabet import AMINO_ACID_IDS, MASK, STANDARD_AMINO_ACIDS, tokenize
from tutorial_lib.protein.esm2 import ESM2

__all__ = [
    "gb1_construct_positions",
    "masked_marginal_scores",
    "mutated_positions",
    "score_variants",
]

_AA_INDEX = np.full(256, -1, dtype=np.int64)
_AA_INDEX[np.frombuffer(STANDARD_AMINO_ACIDS.encode(), np.uint8)] = np.arange(20)


def _check_wild_type(wild_type: str, positions: Sequence[int]) -> np.ndarray:
    if not isinstance(wild_type, str) or not wild_type:
        raise ValueError(f"wild_type must be a non-empty str, got {wild_type!r}")
    bad = [c for c in wild_type if c not in STANDARD_AMINO_ACIDS]
    if bad:
        raise ValueError(
            f"wild_type must be upper-case standard amino acids ({STANDARD_AMINO_ACIDS}); "
            f"found {bad[0]!r} at index {wild_type.index(bad[0])}"
        )
    pos = np.asarray(positions)
    if pos.ndim != 1 or len(pos) == 0 or not np.issubdtype(pos.dtype, np.integer):
        raise ValueError(f"positions must be a non-empty list of integers, got {positions!r}")
    if pos.min() < 0 or pos.max() >= len(wild_type):
        raise ValueError(
            f"positions are 0-based indices into the wild type of length {len(wild_type)}; "
            f"got {pos.min()}..{pos.max()} (1-based residue numbers? subtract 1)"
        )
    if len(np.unique(pos)) != len(pos):
        raise ValueError(f"positions must be distinct, got {pos.tolist()}")
    return pos.astype(np.int64)


@eqx.filter_jit
def _masked_log_probs(
    model: ESM2, tokens: Int[Array, " L"], sites: Int[Array, " P"]
) -> Float[Array, "P 20"]:
    masked = tokens.at[sites].set(MASK)
    log_probs = jax.nn.log_softmax(model(masked).logits[sites], axis=-1)
    return log_probs[:, jnp.asarray(AMINO_ACID_IDS)]


def masked_marginal_scores(
    model: ESM2, wild_type: str, positions: Sequence[int]
) -> Float[np.ndarray, "P 20"]:
    """log p(amino acid at `positions[i]` | wild type with all `positions` masked).

    Row `i` is position `positions[i]` (0-based index into `wild_type`), columns the 20
    standard amino acids in `STANDARD_AMINO_ACIDS` order (the ESM token order). The
    probabilities come from the softmax over the whole ESM vocabulary, so a row sums to at most
    one; differences between entries of a row do not depend on that choice.
    """
    pos = _check_wild_type(wild_type, positions)
    tokens = jnp.asarray(tokenize(wild_type))
    return np.asarray(_masked_log_probs(model, tokens, jnp.asarray(pos + 1)))


def score_variants(
    log_probs: Float[np.ndarray, "P 20"],
    wild_type: str,
    positions: Sequence[int],
    variants: Sequence[str],
) -> Float[np.ndarray, " n"]:
    """Additive masked-marginal scores of full-length variant sequences (module docstring).

    `log_probs` is `masked_marginal_scores(model, wild_type, positions)`. Every variant must
    have the wild type's length and differ from it only at `positions`, with standard amino
    acids there; anything else raises `ValueError` (often a sign of misaligned positions).
    """
    pos = _check_wild_type(wild_type, positions)
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.shape != (len(pos), 20):
        raise ValueError(f"log_probs must have shape ({len(pos)}, 20), got {lp.shape}")
    if isinstance(variants, str):
        raise TypeError("variants must be a list of sequences, not one str")
    variants = list(variants)
    n, length = len(variants), len(wild_type)
    if n == 0:
        return np.zeros(0)
    wrong = [i for i, v in enumerate(variants) if not isinstance(v, str) or len(v) != length]
    if wrong:
        raise ValueError(
            f"variant {wrong[0]} is not a str of the wild type's length {length}: "
            f"{variants[wrong[0]]!r:.60}"
        )
    try:
        seqs = np.frombuffer("".join(variants).encode("ascii"), np.uint8).reshape(n, length)
    except UnicodeEncodeError:
        raise ValueError("variants must be ASCII amino-acid strings") from None
    wt = np.frombuffer(wild_type.encode("ascii"), np.uint8)
    elsewhere = np.ones(length, bool)
    elsewhere[pos] = False
    differs = (seqs[:, elsewhere] != wt[elsewhere]).any(1)
    if differs.any():
        i = int(np.argmax(differs))
        j = int(np.flatnonzero(elsewhere)[np.argmax(seqs[i, elsewhere] != wt[elsewhere])])
        raise ValueError(
            f"variant {i} differs from the wild type at index {j}, which is not one of the "
            f"scored positions {pos.tolist()}; are the positions 0-based indices into the "
            "same sequence?"
        )
    mutant = _AA_INDEX[seqs[:, pos]]
    if (mutant < 0).any():
        i = int(np.argmax((mutant < 0).any(1)))
        raise ValueError(f"variant {i} has a non-standard residue at a scored position")
    wild = _AA_INDEX[wt[pos]]
    rows = np.arange(len(pos))
    return (lp[rows, mutant] - lp[rows, wild]).sum(1)


def mutated_positions(wild_type: str, variants: Sequence[str]) -> tuple[int, ...]:
    """0-based indices at which at least one of the equal-length `variants` differs from
    `wild_type`."""
    length = len(wild_type)
    if any(len(v) != length for v in variants):
        raise ValueError("every variant must have the wild type's length")
    if not variants:
        return ()
    seqs = np.frombuffer("".join(variants).encode("ascii"), np.uint8).reshape(-1, length)
    wt = np.frombuffer(wild_type.encode("ascii"), np.uint8)
    return tuple(int(i) for i in np.flatnonzero((seqs != wt).any(0)))


def gb1_construct_positions(gb1) -> tuple[int, ...]:
    """String indices in `gb1.sequences` of the residues that `gb1.variants` lists.

    Checks, on the data, that the variant letters sit at those indices in every sequence and
    that the wild type `gb1.wild_type` is among the variants. Returns `(38, 39, 40, 53)`
    for FLIP's construct: the GB1 residue numbers `gb1.positions` minus one.
    """
    try:
        row = gb1.variants.index(gb1.wild_type)
    except ValueError:
        raise ValueError(f"wild type {gb1.wild_type!r} is not among the variants") from None
    wild_type = gb1.sequences[row]
    positions = mutated_positions(wild_type, gb1.sequences)
    if len(positions) != len(gb1.positions):
        raise ValueError(
            f"variants differ from the wild type at {len(positions)} indices, expected "
            f"{len(gb1.positions)}"
        )
    n, length = len(gb1.sequences), len(wild_type)
    seqs = np.frombuffer("".join(gb1.sequences).encode("ascii"), np.uint8).reshape(n, length)
    letters = np.frombuffer("".join(gb1.variants).encode("ascii"), np.uint8).reshape(n, -1)
    if not np.array_equal(seqs[:, list(positions)], letters):
        raise ValueError("the variant letters do not match the sequences at the mutated indices")
    return positions
