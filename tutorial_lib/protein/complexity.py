"""Sequences fit for design: the 20-letter check and guards against low-complexity sequences.

An optimiser that rewards a predicted property finds degenerate sequences fast: `KEKEKE...` is
as charged as a thermophile can look. Two guards catch them:

- `window_entropy` and `complexity_penalty`: the Shannon entropy (bits) of the composition of
  every window of 12 residues and its deficit below SEG's 2.2-bit trigger (Wootton & Federhen
  1993). JAX, on token ids, so that the design energy can include the penalty;
- `guard`: a verdict on one finished sequence, adding long homopolymer runs and short tandem
  repeats to the lowest window entropy.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from tutorial_lib.protein.alphabet import AMINO_ACID_IDS, STANDARD_AMINO_ACIDS, tokenize

__all__ = [
    "SEG_THRESHOLD",
    "SEG_WINDOW",
    "Guard",
    "check_sequence",
    "complexity_penalty",
    "guard",
    "window_entropy",
]

#: SEG's trigger window and complexity (bits), Wootton & Federhen (1993).
SEG_WINDOW = 12
SEG_THRESHOLD = 2.2
_AA = jnp.asarray(AMINO_ACID_IDS, dtype=jnp.int32)


def check_sequence(sequence: str, *, name: str = "sequence") -> str:
    """Upper-cased `sequence` if it is a non-empty string of the 20 standard amino acids."""
    if not isinstance(sequence, str):
        raise TypeError(f"{name} must be a str, got {type(sequence).__name__}")
    if not sequence:
        raise ValueError(f"{name} is empty")
    seq = sequence.upper()
    bad = sorted(set(seq) - set(STANDARD_AMINO_ACIDS))
    if bad:
        raise ValueError(
            f"{name} holds non-standard residues {''.join(bad)!r}; design works on the 20 "
            f"standard amino acids {STANDARD_AMINO_ACIDS} (replace or crop them first)"
        )
    return seq


def window_entropy(
    tokens: Int[Array, " L"], *, window: int = SEG_WINDOW
) -> Float[Array, " L-{window}+1"]:
    """Shannon entropy (bits) of the amino-acid composition of every `window` residues.

    Windows that are not made only of standard residues (they overlap `<cls>`, `<eos>` or
    padding) get the maximum `log2(window)`, so they never look low-complexity.
    """
    if window < 2 or window > tokens.shape[0]:
        raise ValueError(f"window must be in 2..{tokens.shape[0]}, got {window}")
    onehot = (tokens[:, None] == _AA[None, :]).astype(jnp.float32)
    cum = jnp.concatenate([jnp.zeros((1, 20)), jnp.cumsum(onehot, axis=0)])
    counts = cum[window:] - cum[:-window]
    p = counts / window
    h = -jnp.sum(jnp.where(p > 0, p * jnp.log2(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)
    full = counts.sum(-1) == window
    return jnp.where(full, h, math.log2(window))


def complexity_penalty(
    tokens: Int[Array, " L"], *, window: int = SEG_WINDOW, threshold: float = SEG_THRESHOLD
) -> Float[Array, ""]:
    """Sum over windows of the entropy deficit `max(0, threshold - H)`, in bits (0 if none)."""
    return jnp.sum(jax.nn.relu(threshold - window_entropy(tokens, window=window)))


class Guard(NamedTuple):
    """Why a sequence looks degenerate (see `guard`)."""

    min_window_entropy: float  # bits, over windows of SEG_WINDOW residues
    longest_run: int  # longest homopolymer run
    max_periodicity: float  # max over periods 1..8 of the fraction x[i] == x[i + period]
    flagged: bool


def guard(
    sequence: str,
    *,
    window: int = SEG_WINDOW,
    threshold: float = SEG_THRESHOLD,
    max_run: int = 6,
    max_periodicity: float = 0.5,
) -> Guard:
    """Flag low-complexity windows, long homopolymer runs and short tandem repeats.

    Natural proteins match themselves at a shift of `p` residues about as often as random
    sequences of their composition do (5-10%); a tandem repeat with period `p` matches at
    100%. A sequence is flagged when any window's entropy (`window_entropy`; one window of the
    whole sequence if it is shorter) is below `threshold`, a run of one residue is longer than
    `max_run`, or the self-match fraction at some period 1..8 exceeds `max_periodicity`.
    """
    seq = check_sequence(sequence)
    w = min(window, len(seq))
    # One residue has no composition to speak of: zero bits.
    h = float(jnp.min(window_entropy(jnp.asarray(tokenize(seq)), window=w))) if w > 1 else 0.0
    arr = np.frombuffer(seq.encode(), np.uint8)
    change = np.flatnonzero(np.diff(arr) != 0)
    bounds = np.concatenate([[-1], change, [len(arr) - 1]])
    run = int(np.max(np.diff(bounds)))
    periods = [float(np.mean(arr[p:] == arr[:-p])) for p in range(1, min(8, len(arr) - 1) + 1)]
    period = max(periods, default=0.0)
    flagged = h < threshold or run > max_run or period > max_periodicity
    return Guard(h, run, period, bool(flagged))
