"""Protein design by annealed Metropolis-Hastings with ESM2 masked-marginal proposals.

The target is a Boltzmann distribution over sequences `x` of fixed length `L`,

    pi_T(x) ~ exp(-E(x) / T),     E(x) = -s(x) - lambda * log p_LM(x) / L + w * g(x),

- `s(x)`: a predicted property (here a thermostability head on the mean ESM2 embedding);
- `log p_LM(x) / L`: naturalness, the language model's log-likelihood per residue. ESM2 has
  no joint likelihood, only the conditionals `p(x_i | x_-i)`; the pseudo-log-likelihood
  `PLL(x) = sum_i log p(x_i | x_-i)` (Wang & Cho 2019) stands in for it but costs `L` forward
  passes. The sampler never computes it: a move that changes site `i` changes `log p(x)` by
  `log p(x'_i | x_-i) - log p(x_i | x_-i)`, which the proposal's own masked forward pass
  already gives (exact for one site whenever the conditionals come from a joint
  distribution; ESM2's nearly do). `pseudo_log_likelihood` computes the full PLL to check;
- `g(x)`: a low-complexity penalty, the entropy deficit (bits) of every window of 12 residues
  below SEG's 2.2-bit trigger (Wootton & Federhen 1993), which `AAAA...` and `KEKE...`
  windows violate and ordinary protein windows do not (`complexity.complexity_penalty`).

One step picks `n_sites` designable positions S uniformly, masks them, draws new residues
from the model's masked marginals over the 20 standard amino acids (tempered by
`proposal_temperature`), and accepts with the Metropolis-Hastings probability

    min(1, pi_T(x') q(x_S | x_-S) / (pi_T(x) q(x'_S | x_-S))).

The proposal probabilities in both directions come from the same masked forward pass (the
unmasked context `x_-S` is the same before and after the move), so a step costs two forward
passes: the proposal, and `s` and `g` of the proposed sequence. Lowering $T$ along the run
(simulated annealing; Kirkpatrick et al. 1983) turns the sampler into a stochastic optimiser.

Every function acts on ONE chain; `sample_chains` runs many with `jax.vmap`, the steps in
`jax.lax.scan`, all under one `jit`. Everything is deterministic given the key. Judging the
designs (independent judges, diversity, the leaderboard) is `tutorial_lib.protein.judge`.
"""

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from tutorial_lib.protein.alphabet import (
    AMINO_ACID_IDS,
    MASK,
    PAD,
    detokenize,
    is_residue,
    tokenize,
)
from tutorial_lib.protein.complexity import (
    SEG_THRESHOLD,
    SEG_WINDOW,
    check_sequence,
    complexity_penalty,
)
from tutorial_lib.protein.embed import mean_over_residues
from tutorial_lib.protein.esm2 import ESM2
from tutorial_lib.protein.timing import compile_seconds

__all__ = [
    "ChainState",
    "DesignEnergy",
    "DesignResult",
    "EnergyFn",
    "MaskedMarginalProposal",
    "ProposalFn",
    "Scores",
    "StepRecord",
    "design",
    "geometric_schedule",
    "naturalness",
    "pseudo_log_likelihood",
    "run_chain",
    "sample_chains",
]

_AA = jnp.asarray(AMINO_ACID_IDS, dtype=jnp.int32)


def _aa_index(tokens: Int[Array, " L"]) -> Int[Array, " L"]:
    """Index 0..19 of each token in `AMINO_ACID_IDS` (0 for anything else)."""
    return jnp.argmax(tokens[:, None] == _AA[None, :], axis=-1)


# --- scores of one sequence ------------------------------------------------------------------


class Scores(NamedTuple):
    """The terms of the design energy for one sequence."""

    stability: Float[Array, ""]  # predicted by the head (higher = more thermostable)
    naturalness: Float[Array, ""]  # mean log p(x_i | x), unmasked, nats per residue
    penalty: Float[Array, ""]  # low-complexity entropy deficit, bits


def naturalness(model: ESM2, tokens: Int[Array, " L"]) -> Float[Array, ""]:
    """Mean over residues of `log p(x_i | x)` from one UNMASKED forward pass (nats).

    The log-probabilities are renormalised over the 20 standard amino acids. This is the
    one-pass surrogate of `pseudo_log_likelihood` (which masks each position in turn); it is
    higher, because the model sees the residue it scores, but ranks sequences similarly.
    """
    return _naturalness(model(tokens).logits, tokens)


def _naturalness(logits: Float[Array, "L V"], tokens: Int[Array, " L"]) -> Float[Array, ""]:
    logp = jax.nn.log_softmax(logits[:, _AA], axis=-1)
    per_residue = jnp.take_along_axis(logp, _aa_index(tokens)[:, None], axis=-1)[:, 0]
    keep = is_residue(tokens)
    return jnp.sum(jnp.where(keep, per_residue, 0.0)) / jnp.maximum(keep.sum(), 1)


def pseudo_log_likelihood(model: ESM2, tokens: Int[Array, " L"]) -> Float[Array, ""]:
    """Exact pseudo-log-likelihood per residue, `(1/L) sum_i log p(x_i | x_-i)` (nats).

    Costs one forward pass per position (`L` passes, batched with `vmap`); use it to evaluate
    a few designs, not inside the sampler.
    """
    length = tokens.shape[0]
    idx = _aa_index(tokens)

    def masked_logp(i: Int[Array, ""]) -> Float[Array, ""]:
        logits = model(tokens.at[i].set(MASK)).logits[i, _AA]
        return jax.nn.log_softmax(logits)[idx[i]]

    per_residue = jax.vmap(masked_logp)(jnp.arange(length))
    keep = is_residue(tokens)
    return jnp.sum(jnp.where(keep, per_residue, 0.0)) / jnp.maximum(keep.sum(), 1)


class DesignEnergy(eqx.Module):
    """The explicit energy `E(x) = -head(mean_embedding(x)) + w * penalty(x)`.

    One forward pass of `model` gives the mean embedding (`embed.mean_over_residues`, as in
    `embed.mean_embedding`) and, as a free by-product, the one-pass
    `naturalness`. The language-model term of the design target is added by the sampler
    (see the module docstring), not here.
    """

    model: ESM2
    head: Callable[[Float[Array, " D"]], Float[Array, ""]]
    penalty_weight: float = 1.0
    window: int = eqx.field(static=True, default=SEG_WINDOW)
    threshold: float = eqx.field(static=True, default=SEG_THRESHOLD)

    def __check_init__(self) -> None:
        w = self.penalty_weight
        if isinstance(w, int | float) and (not math.isfinite(w) or w < 0):
            raise ValueError(f"penalty_weight must be a finite number >= 0, got {w}")

    def scores(self, tokens: Int[Array, " L"]) -> Scores:
        out = self.model(tokens)
        embedding = mean_over_residues(out.hidden, tokens)
        return Scores(
            stability=jnp.asarray(self.head(embedding), jnp.float32).reshape(()),
            naturalness=_naturalness(out.logits, tokens),
            penalty=complexity_penalty(tokens, window=self.window, threshold=self.threshold),
        )

    def __call__(self, tokens: Int[Array, " L"]) -> tuple[Float[Array, ""], Scores]:
        s = self.scores(tokens)
        return -s.stability + self.penalty_weight * s.penalty, s


# --- the sampler ------------------------------------------------------------------------------


class MaskedMarginalProposal(eqx.Module):
    """`log p(a | x_-S)` over the 20 amino acids at every position, with the sites S masked.

    One forward pass of the masked sequence; rows outside S are returned too but unused.
    """

    model: ESM2

    def __call__(self, tokens: Int[Array, " L"], sites: Bool[Array, " L"]) -> Float[Array, "L 20"]:
        logits = self.model(jnp.where(sites, MASK, tokens)).logits[:, _AA]
        return jax.nn.log_softmax(logits, axis=-1)


class ChainState(NamedTuple):
    tokens: Int[Array, " L"]
    energy: Float[Array, ""]  # the explicit energy E(x), without the language-model term
    aux: Any  # whatever the energy function returns next to the energy (e.g. `Scores`)
    log_lm: Float[Array, ""]  # change of the LM log-likelihood since the start (nats)


class StepRecord(NamedTuple):
    """What `run_chain` records after every step."""

    energy: Float[Array, ""]
    aux: Any
    log_lm: Float[Array, ""]
    accepted: Bool[Array, ""]  # MH acceptance (also True for a proposal equal to the state)
    changed: Bool[Array, ""]  # the proposal differed from the current sequence
    hamming: Int[Array, ""]  # positions differing from the starting sequence
    temperature: Float[Array, ""]


EnergyFn = Callable[[Int[Array, " L"]], tuple[Float[Array, ""], Any]]
ProposalFn = Callable[[Int[Array, " L"], Bool[Array, " L"]], Float[Array, "L K"]]


def _uniform_size(length: int, n_sites: int, n_letters: int) -> int:
    return length + n_sites * n_letters + 1


def _gumbel(u: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    u = jnp.clip(u, jnp.finfo(u.dtype).tiny, 1.0 - jnp.finfo(u.dtype).eps)
    return -jnp.log(-jnp.log(u))


def _mh_step(
    u: Float[Array, " U"],
    state: ChainState,
    temperature: Float[Array, ""],
    *,
    energy_fn: EnergyFn,
    proposal_fn: ProposalFn,
    alphabet: Int[Array, " K"],
    designable: Bool[Array, " L"],
    lm_weight: float | Float[Array, ""],
    proposal_temperature: float,
    n_sites: int,
    anchor: Int[Array, " L"] | None = None,
    max_mutations: Int[Array, ""] | int | None = None,
) -> tuple[ChainState, Bool[Array, ""], Bool[Array, ""]]:
    # All randomness comes from one vector of uniforms `u` (Gumbel-max sampling), so a chain
    # draws it for all steps at once: random-number code compiles slowly on a CPU, and
    # inside `scan` + `vmap` it would dominate the compile time.
    length, n_letters = state.tokens.shape[0], alphabet.shape[0]
    u_sites, u_letters, u_accept = u[:length], u[length:-1], u[-1]
    # n_sites distinct positions, uniformly among the designable ones (Gumbel top-k).
    site_keys = jnp.where(designable, _gumbel(u_sites), -jnp.inf)
    idx = jax.lax.top_k(site_keys, n_sites)[1]
    sites = jnp.zeros(length, bool).at[idx].set(True)
    logp = proposal_fn(state.tokens, sites)[idx]  # (n_sites, K)
    logq = jax.nn.log_softmax(logp / proposal_temperature, axis=-1)
    new_index = jnp.argmax(logq + _gumbel(u_letters.reshape(n_sites, n_letters)), axis=-1)
    old_index = jnp.argmax(state.tokens[idx, None] == alphabet[None, :], axis=-1)
    proposal = state.tokens.at[idx].set(alphabet[new_index])
    rows = jnp.arange(n_sites)
    d_log_lm = jnp.sum(logp[rows, new_index] - logp[rows, old_index])
    log_q_ratio = jnp.sum(logq[rows, old_index] - logq[rows, new_index])
    energy, aux = energy_fn(proposal)
    d_log_target = (-(energy - state.energy) + lm_weight * d_log_lm) / temperature
    accept = jnp.log(u_accept) < d_log_target + log_q_ratio
    if max_mutations is not None:
        # A hard trust region: the target is zero beyond `max_mutations` from the anchor.
        accept = accept & (jnp.sum(proposal != anchor) <= max_mutations)
    changed = jnp.any(new_index != old_index)
    new = ChainState(proposal, energy, aux, state.log_lm + d_log_lm)
    state = jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, state)
    return state, accept, changed


def run_chain(
    key: PRNGKeyArray,
    tokens: Int[Array, " L"],
    temperatures: Float[Array, " steps"],
    *,
    energy_fn: EnergyFn,
    proposal_fn: ProposalFn,
    alphabet: Int[Array, " K"],
    designable: Bool[Array, " L"],
    lm_weight: float | Float[Array, ""] = 0.0,
    proposal_temperature: float = 1.0,
    n_sites: int = 1,
    max_mutations: Int[Array, ""] | int | None = None,
) -> tuple[ChainState, ChainState, StepRecord]:
    """`len(temperatures)` MH steps from `tokens` in a `lax.scan`: initial and final state,
    and the trace. With `max_mutations`, moves that would leave more than that many positions
    different from `tokens` are rejected (a trust region around the start)."""
    energy, aux = energy_fn(tokens)
    start = tokens
    size = _uniform_size(tokens.shape[0], n_sites, alphabet.shape[0])
    uniforms = jr.uniform(key, (temperatures.shape[0], size))

    def step(state, xs):
        u, t = xs
        state, accepted, changed = _mh_step(
            u,
            state,
            t,
            energy_fn=energy_fn,
            proposal_fn=proposal_fn,
            alphabet=alphabet,
            designable=designable,
            lm_weight=lm_weight,
            proposal_temperature=proposal_temperature,
            n_sites=n_sites,
            anchor=start,
            max_mutations=max_mutations,
        )
        hamming = jnp.sum(state.tokens != start)
        record = StepRecord(state.energy, state.aux, state.log_lm, accepted, changed, hamming, t)
        return state, record

    init = ChainState(tokens, energy, aux, jnp.zeros((), jnp.float32))
    final, trace = jax.lax.scan(step, init, (uniforms, temperatures))
    return init, final, trace


@eqx.filter_jit
def sample_chains(
    key: PRNGKeyArray,
    starts: Int[Array, "C L"],
    temperatures: Float[Array, " steps"],
    energy_fn: EnergyFn,
    proposal_fn: ProposalFn,
    *,
    alphabet: Int[Array, " K"] = _AA,
    designable: Bool[Array, "C L"] | None = None,
    lm_weight: Float[Array, " C"] | float = 0.0,
    proposal_temperature: float = 1.0,
    n_sites: int = 1,
    max_mutations: Int[Array, " C"] | None = None,
) -> tuple[ChainState, ChainState, StepRecord]:
    """`C` independent chains (one per row of `starts`), vmapped, in one compiled call.

    `designable` defaults to the residue positions of each row; `lm_weight` and
    `max_mutations` (default: no limit) may differ per chain. Returns the initial states,
    final states and traces, with a leading chain axis; trace fields have shape `(C, steps, ...)`.
    """
    if designable is None:
        designable = is_residue(starts)
    keys = jr.split(key, starts.shape[0])
    lm_weight = jnp.broadcast_to(jnp.asarray(lm_weight, jnp.float32), starts.shape[:1])
    limit = starts.shape[1] if max_mutations is None else max_mutations
    limit = jnp.broadcast_to(jnp.asarray(limit, jnp.int32), starts.shape[:1])

    def one(k, x, d, w, m):
        return run_chain(
            k,
            x,
            temperatures,
            energy_fn=energy_fn,
            proposal_fn=proposal_fn,
            alphabet=alphabet,
            designable=d,
            lm_weight=w,
            proposal_temperature=proposal_temperature,
            n_sites=n_sites,
            max_mutations=m,
        )

    return jax.vmap(one)(keys, starts, designable, lm_weight, limit)


def geometric_schedule(t_start: float, t_end: float, n_steps: int) -> Float[Array, " n_steps"]:
    """Temperatures decreasing geometrically from `t_start` to `t_end` over `n_steps`."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be positive, got {n_steps}")
    if not (t_start > 0 and t_end > 0):
        raise ValueError(f"temperatures must be > 0, got {t_start} and {t_end}")
    return jnp.geomspace(t_start, t_end, n_steps).astype(jnp.float32)


class DesignResult(NamedTuple):
    """Starting sequences, designs and traces of `design` (chain `c` started from
    `starts[start_index[c]]`)."""

    starts: list[str]
    start_index: Int[np.ndarray, " C"]
    designs: list[str]
    initial: ChainState  # leading chain axis
    final: ChainState  # leading chain axis
    trace: StepRecord  # (C, steps, ...) arrays
    seconds: float  # wall time of the sampling call
    compile_seconds: float  # of which tracing and compiling

    @property
    def lm_naturalness_change(self) -> Float[np.ndarray, "C steps"]:
        """Per-step change of `log p_LM / L` since the start (nats per residue), per chain."""
        lengths = np.array([len(self.starts[i]) for i in self.start_index])
        return np.asarray(self.trace.log_lm) / lengths[:, None]

    @property
    def acceptance_rate(self) -> float:
        """Of the proposals that would change the sequence, the fraction accepted (moves
        rejected at the edge of the trust region count as rejected)."""
        changed = np.asarray(self.trace.changed)
        moved = changed & np.asarray(self.trace.accepted)
        return float(moved.sum() / max(changed.sum(), 1))


def design(
    key: PRNGKeyArray,
    energy: DesignEnergy,
    starts: Sequence[str],
    *,
    naturalness_weight: float = 1.0,
    chains_per_start: int = 4,
    n_steps: int = 200,
    t_start: float = 0.02,
    t_end: float = 0.002,
    n_sites: int = 1,
    proposal_temperature: float = 1.0,
    max_mutation_fraction: float = 1.0,
) -> DesignResult:
    """Anneal `chains_per_start` chains from every sequence in `starts` (all in one jit).

    The target is `exp(-(E(x) - naturalness_weight * log p_LM(x) / L) / T)` (see the module
    docstring), with $T$ falling geometrically from `t_start` to `t_end`. Temperatures are in
    the units of the energy: one mutation changes a per-residue average by about `1/L` of
    its range, so useful temperatures are small. No design differs from its start at more
    than `floor(max_mutation_fraction * L)` positions.
    """
    if isinstance(starts, str):
        raise TypeError("starts must be a list of sequences, not one str")
    starts = [check_sequence(s, name=f"start {i}") for i, s in enumerate(starts)]
    if not starts:
        raise ValueError("starts is empty")
    if not (math.isfinite(naturalness_weight) and naturalness_weight >= 0):
        raise ValueError(f"naturalness_weight must be >= 0, got {naturalness_weight}")
    if not proposal_temperature > 0:
        raise ValueError(f"proposal_temperature must be > 0, got {proposal_temperature}")
    if not 0 < max_mutation_fraction <= 1:
        raise ValueError(f"max_mutation_fraction must be in (0, 1], got {max_mutation_fraction}")
    if chains_per_start < 1:
        raise ValueError(f"chains_per_start must be positive, got {chains_per_start}")
    if not 1 <= n_sites <= min(len(s) for s in starts):
        raise ValueError(f"n_sites must be in 1..{min(len(s) for s in starts)}, got {n_sites}")
    width = max(len(s) for s in starts) + 2
    tokens = np.full((len(starts), width), PAD, np.int32)
    for i, s in enumerate(starts):
        tokens[i, : len(s) + 2] = tokenize(s)
    start_index = np.repeat(np.arange(len(starts)), chains_per_start)
    lengths = np.array([len(starts[i]) for i in start_index], np.float32)
    clock = time.perf_counter()
    with compile_seconds() as compiling:
        initial, final, trace = jax.block_until_ready(
            sample_chains(
                key,
                jnp.asarray(tokens[start_index]),
                geometric_schedule(t_start, t_end, n_steps),
                energy,
                MaskedMarginalProposal(energy.model),
                lm_weight=jnp.asarray(naturalness_weight / lengths),
                proposal_temperature=proposal_temperature,
                n_sites=n_sites,
                max_mutations=jnp.asarray(np.floor(max_mutation_fraction * lengths), jnp.int32),
            )
        )
    seconds = time.perf_counter() - clock
    designs = [detokenize(row) for row in np.asarray(final.tokens)]
    return DesignResult(starts, start_index, designs, initial, final, trace, seconds, compiling[0])
