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
  windows violate and ordinary protein windows do not.

One step picks `n_sites` designable positions S uniformly, masks them, draws new residues
from the model's masked marginals over the 20 standard amino acids (tempered by
`proposal_temperature`), and accepts with the Metropolis-Hastings probability

    min(1, pi_T(x') q(x_S | x_-S) / (pi_T(x) q(x'_S | x_-S))).

The proposal probabilities in both directions come from the same masked forward pass (the
unmasked context `x_-S` is the same before and after the move), so a step costs two forward
passes: the proposal, and `s` and `g` of the proposed sequence. Lowering `T` along the run
(simulated annealing; Kirkpatrick et al. 1983) turns the sampler into a stochastic optimiser.

Every function acts on ONE chain; `sample_chains` runs many with `jax.vmap`, the steps in
`jax.lax.scan`, all under one `jit`. Everything is deterministic given the key.
"""

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from .alphabet import AMINO_ACID_IDS, CLS, EOS, MASK, PAD, STANDARD_AMINO_ACIDS, tokenize
from .esm2 import ESM2
from .thermo import compositions

__all__ = [
    "ChainState",
    "CompositionJudge",
    "DesignEnergy",
    "DesignResult",
    "Guard",
    "LeaderboardRow",
    "MaskedMarginalProposal",
    "Scores",
    "StepRecord",
    "check_sequence",
    "compile_seconds",
    "complexity_penalty",
    "design",
    "fit_composition_judge",
    "format_leaderboard",
    "gb1_fitness_judge",
    "geometric_schedule",
    "guard",
    "hamming_matrix",
    "leaderboard",
    "mean_pairwise_distance",
    "mh_step",
    "naturalness",
    "pseudo_log_likelihood",
    "run_chain",
    "sample_chains",
    "score_tokens",
    "window_entropy",
]

#: SEG's trigger window and complexity (bits), Wootton & Federhen (1993).
SEG_WINDOW = 12
SEG_THRESHOLD = 2.2
_AA = jnp.asarray(AMINO_ACID_IDS, dtype=jnp.int32)


# --- input checks ----------------------------------------------------------------------------


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


def _residues(tokens: Int[Array, " L"]) -> Bool[Array, " L"]:
    return (tokens != CLS) & (tokens != EOS) & (tokens != PAD)


def _aa_index(tokens: Int[Array, " L"]) -> Int[Array, " L"]:
    """Index 0..19 of each token in `AMINO_ACID_IDS` (0 for anything else)."""
    return jnp.argmax(tokens[:, None] == _AA[None, :], axis=-1)


# --- guards against degenerate sequences -----------------------------------------------------


def window_entropy(
    tokens: Int[Array, " L"], *, window: int = SEG_WINDOW
) -> Float[Array, " L-window+1"]:
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
    100%. A sequence is flagged when any window's entropy is below `threshold`, a run of one
    residue is longer than `max_run`, or the self-match fraction at some period 1..8 exceeds
    `max_periodicity`.
    """
    seq = check_sequence(sequence)
    arr = np.frombuffer(seq.encode(), np.uint8)
    w = min(window, len(seq))
    onehot = (arr[:, None] == np.frombuffer(STANDARD_AMINO_ACIDS.encode(), np.uint8)).astype(float)
    cum = np.concatenate([np.zeros((1, 20)), np.cumsum(onehot, axis=0)])
    p = (cum[w:] - cum[:-w]) / w
    h = float(np.min(-np.sum(p * np.log2(np.where(p > 0, p, 1.0)), axis=-1)))
    change = np.flatnonzero(np.diff(arr) != 0)
    bounds = np.concatenate([[-1], change, [len(arr) - 1]])
    run = int(np.max(np.diff(bounds)))
    periods = [float(np.mean(arr[p:] == arr[:-p])) for p in range(1, min(8, len(arr) - 1) + 1)]
    period = max(periods, default=0.0)
    flagged = h < threshold or run > max_run or period > max_periodicity
    return Guard(h, run, period, bool(flagged))


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
    keep = _residues(tokens)
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
    keep = _residues(tokens)
    return jnp.sum(jnp.where(keep, per_residue, 0.0)) / jnp.maximum(keep.sum(), 1)


class DesignEnergy(eqx.Module):
    """The explicit energy `E(x) = -head(mean_embedding(x)) + w * penalty(x)`.

    One forward pass of `model` gives the mean embedding (over residues, exactly as
    `tutorial_lib.protein.embed.mean_embedding`) and, as a free by-product, the one-pass
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
        keep = _residues(tokens)
        total = jnp.sum(jnp.where(keep[:, None], out.hidden, 0.0), axis=0)
        embedding = total / jnp.maximum(keep.sum(), 1)
        return Scores(
            stability=jnp.asarray(self.head(embedding), jnp.float32).reshape(()),
            naturalness=_naturalness(out.logits, tokens),
            penalty=complexity_penalty(tokens, window=self.window, threshold=self.threshold),
        )

    def __call__(self, tokens: Int[Array, " L"]) -> tuple[Float[Array, ""], Scores]:
        s = self.scores(tokens)
        return -s.stability + self.penalty_weight * s.penalty, s


def score_tokens(energy: DesignEnergy, tokens: Int[Array, "B L"]) -> Scores:
    """`Scores` of a right-padded batch of tokenised sequences (compiled, vmapped)."""
    return _score_batch(energy, jnp.asarray(tokens))


@eqx.filter_jit
def _score_batch(energy: DesignEnergy, tokens: Int[Array, "B L"]) -> Scores:
    return jax.vmap(energy.scores)(tokens)


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


def mh_step(
    key: PRNGKeyArray,
    state: ChainState,
    temperature: Float[Array, ""],
    *,
    energy_fn: EnergyFn,
    proposal_fn: ProposalFn,
    alphabet: Int[Array, " K"],
    designable: Bool[Array, " L"],
    lm_weight: float | Float[Array, ""] = 0.0,
    proposal_temperature: float = 1.0,
    n_sites: int = 1,
) -> tuple[ChainState, Bool[Array, ""], Bool[Array, ""]]:
    """One Metropolis-Hastings step for `pi(x) ~ exp(-(E(x) - lm_weight * log p(x)) / T)`.

    `n_sites` distinct designable positions S are drawn uniformly (independently of the
    state); `proposal_fn(tokens, sites)` returns the language model's conditionals
    `log p(a | x_-S)` over `alphabet`. New residues are drawn independently at each site from
    those conditionals tempered by `proposal_temperature`. The change of `log p(x)` is
    `sum_S log p(x'_i | x_-S) - log p(x_i | x_-S)`: for one site this is exact for any joint
    distribution with these conditionals, for several sites an approximation. Returns the
    new state, whether the move was accepted, and whether it changed the sequence.
    """
    size = _uniform_size(state.tokens.shape[0], n_sites, alphabet.shape[0])
    return _mh_step(
        jr.uniform(key, (size,)),
        state,
        temperature,
        energy_fn=energy_fn,
        proposal_fn=proposal_fn,
        alphabet=alphabet,
        designable=designable,
        lm_weight=lm_weight,
        proposal_temperature=proposal_temperature,
        n_sites=n_sites,
    )


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
    temperatures: Float[Array, " T"],
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
    temperatures: Float[Array, " T"],
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
    final states and traces, with a leading chain axis; trace fields have shape `(C, T, ...)`.
    """
    if designable is None:
        designable = _residues(starts)
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


_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


@contextlib.contextmanager
def compile_seconds():
    """Context manager yielding a one-element list that accumulates the seconds JAX spends
    tracing, lowering and compiling inside the block (from `jax.monitoring` events)."""
    total = [0.0]

    def listener(event: str, duration: float, **kwargs) -> None:
        if event in _COMPILE_EVENTS:
            total[0] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield total
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


class DesignResult(NamedTuple):
    """Starting sequences, designs and traces of `design` (chain `c` started from
    `starts[start_index[c]]`)."""

    starts: list[str]
    start_index: Int[np.ndarray, " C"]
    designs: list[str]
    initial: ChainState  # leading chain axis
    final: ChainState  # leading chain axis
    trace: StepRecord  # (C, T, ...) arrays
    seconds: float  # wall time of the sampling call
    compile_seconds: float  # of which tracing and compiling

    @property
    def lm_naturalness_change(self) -> Float[np.ndarray, "C T"]:
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
    docstring), with `T` falling geometrically from `t_start` to `t_end`. Temperatures are in
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
    designs = [_decode(row) for row in np.asarray(final.tokens)]
    return DesignResult(starts, start_index, designs, initial, final, trace, seconds, compiling[0])


def _decode(row: Int[np.ndarray, " L"]) -> str:
    lookup = {t: a for t, a in zip(AMINO_ACID_IDS, STANDARD_AMINO_ACIDS, strict=True)}
    return "".join(lookup[int(t)] for t in row if int(t) in lookup)


# --- diversity --------------------------------------------------------------------------------


def hamming_matrix(sequences: Sequence[str]) -> Float[np.ndarray, "n n"]:
    """Pairwise fraction of differing positions between equal-length sequences."""
    if isinstance(sequences, str):
        raise TypeError("hamming_matrix expects a list of sequences, not one str")
    if not sequences:
        return np.zeros((0, 0))
    lengths = {len(s) for s in sequences}
    if len(lengths) > 1:
        raise ValueError(
            f"hamming_matrix needs equal-length sequences, got lengths {sorted(lengths)}; "
            "compare designs of the same starting sequence"
        )
    if 0 in lengths:
        raise ValueError("hamming_matrix got empty sequences")
    arr = np.array([np.frombuffer(s.upper().encode(), np.uint8) for s in sequences])
    return (arr[:, None, :] != arr[None, :, :]).mean(-1)


def mean_pairwise_distance(sequences: Sequence[str]) -> float:
    """Mean normalised Hamming distance over all pairs (0: identical, 1: nothing shared)."""
    d = hamming_matrix(sequences)
    n = d.shape[0]
    if n < 2:
        raise ValueError(f"mean_pairwise_distance needs at least 2 sequences, got {n}")
    return float(d[np.triu_indices(n, 1)].mean())


# --- an independent judge and the leaderboard ------------------------------------------------


class CompositionJudge(eqx.Module):
    """Logistic regression of "thermophilic or hyperthermophilic" on amino-acid composition.

    It never sees a language model, only the 20 frequencies of `thermo.composition`;
    `judge(sequence)` is its logit of P(thermophile), `judge.probability(sequence)` the
    probability.
    """

    weight: Float[np.ndarray, " 20"]
    bias: float
    mean: Float[np.ndarray, " 20"]
    scale: Float[np.ndarray, " 20"]

    def score(self, composition: Float[np.ndarray, "n 20"]) -> Float[np.ndarray, " n"]:
        """Logits from precomputed rows of `thermo.compositions`."""
        return ((np.asarray(composition) - self.mean) / self.scale) @ self.weight + self.bias

    def logits(self, sequences: Sequence[str]) -> Float[np.ndarray, " n"]:
        checked = [check_sequence(s, name=f"sequence {i}") for i, s in enumerate(sequences)]
        return self.score(compositions(checked))

    def __call__(self, sequence: str) -> float:
        return float(self.logits([sequence])[0])

    def probability(self, sequence: str) -> float:
        return float(1.0 / (1.0 + np.exp(-self(sequence))))


def fit_composition_judge(
    composition: Float[np.ndarray, "n 20"],
    labels: Int[np.ndarray, " n"],
    *,
    positive: Sequence[int] = (2, 3),
    l2: float = 1.0,
    n_iter: int = 20,
) -> CompositionJudge:
    """L2-regularised logistic regression (Newton's method, NumPy) of `labels in positive` on
    standardised amino-acid composition (rows of `thermo.compositions(sequences)`).
    ThermoProt classes 2 and 3 are the thermophiles."""
    comp = np.asarray(composition, np.float64)
    labels = np.asarray(labels)
    if comp.ndim != 2 or comp.shape[1] != 20:
        raise ValueError(f"composition must have shape (n, 20), got {comp.shape}")
    if len(comp) != len(labels) or len(labels) == 0:
        raise ValueError(f"got {len(comp)} compositions and {len(labels)} labels")
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    y = np.isin(labels, positive).astype(np.float64)
    if y.min() == y.max():
        raise ValueError("the labels hold a single class once grouped by `positive`")
    mean, scale = comp.mean(0), comp.std(0) + 1e-8
    x = np.concatenate([(comp - mean) / scale, np.ones((len(y), 1))], axis=1)
    w = np.zeros(21)
    reg = l2 * np.diag([1.0] * 20 + [0.0])
    for _ in range(n_iter):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        hess = (x * (p * (1 - p))[:, None]).T @ x + reg
        w = w - np.linalg.solve(hess, x.T @ (p - y) + reg @ w)
    return CompositionJudge(w[:20], float(w[20]), mean, scale)


def gb1_fitness_judge(gb1: Any) -> Callable[[str], float]:
    """Measured GB1 fitness (Wu et al. 2016) of a 4-site variant: the best possible judge.

    The returned function takes the four residues at positions 39, 40, 41 and 54 (e.g.
    `"VDGV"`, the wild type, fitness 1.0) and returns the measured fitness, or NaN for one of
    the few combinations that were not measured.
    """
    table = dict(zip(gb1.variants, np.asarray(gb1.fitness, float), strict=True))

    def judge(variant: str) -> float:
        v = check_sequence(variant, name="GB1 variant")
        if len(v) != 4:
            raise ValueError(f"a GB1 variant is 4 residues (sites 39, 40, 41, 54), got {v!r}")
        return float(table.get(v, np.nan))

    return judge


class LeaderboardRow(NamedTuple):
    rank: int  # 0 for a disqualified (degenerate) design
    name: str
    score: float  # the judge's score
    extra: dict[str, float]
    flagged: bool


def leaderboard(
    designs: Mapping[str, str],
    judge: Callable[[str], float],
    *,
    extra: Mapping[str, Callable[[str], float]] | None = None,
    check: Callable[[str], bool] | None = lambda s: guard(s).flagged,
) -> list[LeaderboardRow]:
    """Rank `{name: sequence}` by `judge(sequence)`, best first.

    `extra` adds columns (e.g. the design model's own prediction, for comparison). Designs
    for which `check` is true (by default: `guard` flags them as degenerate) are listed last
    with rank 0: a class competition should not reward `KEKEKEKE...`.
    """
    rows = []
    for name, seq in designs.items():
        seq = check_sequence(seq, name=f"design {name!r}")
        cols = {k: float(f(seq)) for k, f in (extra or {}).items()}
        flagged = bool(check(seq)) if check is not None else False
        rows.append((name, float(judge(seq)), cols, flagged))
    rows.sort(key=lambda r: (r[3], -r[1] if np.isfinite(r[1]) else np.inf))
    out, rank = [], 0
    for name, score, cols, flagged in rows:
        rank = rank if flagged else rank + 1
        out.append(LeaderboardRow(0 if flagged else rank, name, score, cols, flagged))
    return out


def format_leaderboard(rows: Sequence[LeaderboardRow], *, score_name: str = "judge") -> str:
    """A Markdown table of `leaderboard` rows."""
    extras = list(rows[0].extra) if rows else []
    head = ["rank", "design", score_name, *extras]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        rank = "DQ" if r.flagged else str(r.rank)
        cells = [rank, r.name, f"{r.score:.3f}", *(f"{r.extra[k]:.3f}" for k in extras)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
