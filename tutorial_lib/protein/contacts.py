"""Residue-residue contact maps: from attention (unsupervised), from coordinates, and scoring.

A transformer trained by masked-language modelling on protein sequences learns, without ever
seeing a structure, attention heads whose maps resemble contact maps (Rao et al. 2021). The
raw maps are dominated by a background — some residues receive attention from everybody — so
each map is symmetrised and *average-product corrected* (APC, Dunn et al. 2008), exactly the
features ESM2's contact head feeds to its logistic regression. This module exposes those
features per layer and head, so that they can be inspected even when the regression weights
are untrained (as in the book's tiny ESM2), and the tools to score a map against the contacts
of a 3-D structure.

Conventions: maps are over residues only (`<cls>`/`<eos>` removed), shape `(N, N)` for `N`
residues; a *contact* is a pair whose C-alpha atoms are closer than 8 Å; *long range* means
sequence separation `|i - j| >= 6` (short 6-11, medium 12-23, long >= 24 in CASP's finer
terms; here one threshold keeps things simple).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from tutorial_lib.protein.alphabet import CLS, EOS, PAD

__all__ = [
    "apc",
    "attention_contact_maps",
    "contact_features",
    "contact_map_from_coords",
    "contact_precision",
    "mass_by_separation",
    "separation_mask",
    "symmetrize",
    "top_pairs",
]


def symmetrize(x: Float[ArrayLike, "... N N"]) -> Float[Array, "... N N"]:
    """`x + xᵀ` over the last two axes: attention from i to j and from j to i, pooled."""
    x = jnp.asarray(x)
    return x + jnp.swapaxes(x, -1, -2)


def apc(x: Float[ArrayLike, "..."]) -> Float[Array, "... N N"]:
    """Average product correction (Dunn et al. 2008) of each `(N, N)` map.

    `F_ij - F_i. F_.j / F_..` with row, column and total sums: removes the rank-one background
    that a residue "popular with every other residue" puts on its whole row and column. ESM2's
    contact head uses this function (through `contact_features`). Maps that are not square,
    `(..., N, N)`, raise a `ValueError`.
    """
    x = jnp.asarray(x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"apc expects square maps (..., N, N), got shape {x.shape}")
    row = x.sum(-1, keepdims=True)
    col = x.sum(-2, keepdims=True)
    return x - row * col / x.sum((-1, -2), keepdims=True)


def contact_features(
    attentions: Float[Array, "layers heads L L"], tokens: Int[Array, " L"]
) -> Float[Array, "layers heads L-2 L-2"]:
    """The features of ESM2's contact head: every attention map over the residues, symmetrised
    and APC-corrected (`N = L - 2`).

    `<eos>` and `<pad>` rows and columns are zeroed before the correction, `<cls>` and `<eos>`
    dropped. No checks, so that it traces inside a model; `attention_contact_maps` checks its
    inputs and compiles.
    """
    keep = (tokens != EOS) & (tokens != PAD)
    a = attentions * (keep[:, None] & keep[None, :])
    return apc(symmetrize(a[..., 1:-1, 1:-1]))


_contact_features = jax.jit(contact_features)


def attention_contact_maps(
    attentions: Float[ArrayLike, "..."], tokens: Int[ArrayLike, " L"]
) -> Float[Array, "layers heads L-2 L-2"]:
    """Symmetrised, APC-corrected attention map of every head, over residues only.

    Takes `ESM2Output.attentions` and the token ids they came from (`<cls> residues <eos>`,
    maybe followed by `<pad>`); returns the `layers * heads` features of ESM2's contact head
    (`contact_features`), `N = L - 2`. Padding rows and columns are zero before the
    correction, as in the head. `attentions` must be `(layers, heads, L, L)` with
    `L = len(tokens)`, and `tokens` start with `<cls>`, or a `ValueError` says what is wrong.
    """
    attentions, tokens = jnp.asarray(attentions), jnp.asarray(tokens)
    if attentions.ndim != 4 or attentions.shape[-2:] != (tokens.shape[0],) * 2:
        raise ValueError(
            f"attentions must be (layers, heads, L, L) with L = len(tokens) = {tokens.shape[0]}, "
            f"got {attentions.shape}"
        )
    if int(tokens[0]) != CLS:
        raise ValueError("tokens must start with <cls>: pass tokenize(sequence), not residues")
    return _contact_features(attentions, tokens)


def separation_mask(n: int, min_sep: int = 6) -> Bool[np.ndarray, "N N"]:
    """True at the pairs `(i, j)` with `|i - j| >= min_sep`."""
    i = np.arange(n)
    return np.abs(i[:, None] - i[None, :]) >= min_sep


def mass_by_separation(
    maps: Float[ArrayLike, "... N N"], max_sep: int | None = None
) -> Float[np.ndarray, "... S"]:
    """Mean of each map along its diagonals: entry `s` averages the pairs with `|i - j| = s`.

    For raw attention (rows summing to one) this is the attention a query pays, on average, to
    a residue `s` positions away: a position-only ("look at my neighbours") head decays fast.
    """
    maps = np.asarray(maps)
    n = maps.shape[-1]
    max_sep = n - 1 if max_sep is None else min(max_sep, n - 1)
    out = []
    for s in range(max_sep + 1):
        upper = np.diagonal(maps, offset=s, axis1=-2, axis2=-1)
        lower = np.diagonal(maps, offset=-s, axis1=-2, axis2=-1)
        out.append(0.5 * (upper.mean(-1) + lower.mean(-1)))
    return np.stack(out, axis=-1)


def top_pairs(
    scores: Float[ArrayLike, "N N"], k: int, *, min_sep: int = 6
) -> Int[np.ndarray, "k 2"]:
    """The `k` highest-scoring pairs `(i, j)`, `i < j`, `j - i >= min_sep`, best first."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (N, N) map, got shape {scores.shape}")
    i, j = np.triu_indices(scores.shape[0], k=max(min_sep, 1))
    if k > i.size:
        raise ValueError(f"k={k} pairs asked for, but only {i.size} have |i - j| >= {min_sep}")
    order = np.argsort(-scores[i, j], kind="stable")[:k]
    return np.stack([i[order], j[order]], axis=1)


def contact_map_from_coords(
    coords: Float[ArrayLike, "..."], cutoff: float = 8.0
) -> Bool[np.ndarray, "N N"]:
    """Pairs of atoms (usually C-alpha) closer than `cutoff` Å; the diagonal is True.

    `coords` holds one point per residue, `(N, 3)`; another shape raises a `ValueError`.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords must be (N, 3), got shape {coords.shape}")
    dist = np.linalg.norm(coords[:, None, :] - coords[None, :, :], axis=-1)
    return dist < cutoff


def contact_precision(
    scores: Float[ArrayLike, "..."],
    contacts: Bool[ArrayLike, "N N"],
    *,
    min_sep: int = 6,
    k: int | None = None,
) -> float:
    """Fraction of the top-`k` pairs (at `|i - j| >= min_sep`) that are true contacts.

    `k` defaults to `N // 5`, the usual "top-L/5" precision of contact prediction. `scores`
    must have the shape of `contacts`, or a `ValueError` says so.
    """
    contacts = np.asarray(contacts, dtype=bool)
    n = contacts.shape[0]
    if np.shape(scores) != contacts.shape:
        raise ValueError(f"scores {np.shape(scores)} and contacts {contacts.shape} differ")
    k = max(n // 5, 1) if k is None else k
    pairs = top_pairs(scores, k, min_sep=min_sep)
    return float(contacts[pairs[:, 0], pairs[:, 1]].mean())
