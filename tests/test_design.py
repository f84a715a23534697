"""Protein design: the MH sampler on toy energies and on a small random ESM2."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.protein import (
    AMINO_ACID_IDS,
    ESM2,
    MASK,
    STANDARD_AMINO_ACIDS,
    ESM2Config,
    check_sequence,
    mean_embedding,
    tokenize,
)
from tutorial_lib.protein import design as D

UBIQUITIN = "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG"


# --- toy state space: L positions, K letters --------------------------------------------------

ALPHABET = jnp.array([4, 5, 6])  # three token ids stand for the letters 0, 1, 2
L = 3
STATES = np.array(list(itertools.product(range(3), repeat=L)))  # (27, 3)
RNG = np.random.default_rng(0)
TOY_E = jnp.asarray(RNG.normal(size=27) * 0.8, jnp.float32)
TOY_LOGP0 = jnp.asarray(np.log(RNG.dirichlet(np.ones(27))), jnp.float32)  # a known joint


def _state_index(tokens):
    letters = jnp.argmax(tokens[:, None] == ALPHABET[None, :], axis=-1)
    return jnp.sum(letters * 3 ** jnp.arange(L - 1, -1, -1))


def toy_energy(tokens):
    return TOY_E[_state_index(tokens)], None


def conditional_proposal(tokens, sites):
    """Exact conditionals log p0(a | x_-i) of the joint TOY_LOGP0 at every position."""
    del sites
    rows = []
    for i in range(L):
        variants = jnp.stack([tokens.at[i].set(a) for a in ALPHABET])
        rows.append(jax.nn.log_softmax(jax.vmap(lambda t: TOY_LOGP0[_state_index(t)])(variants)))
    return jnp.stack(rows)


def _empirical(tokens):
    idx = np.asarray(jax.vmap(_state_index)(tokens))
    return np.bincount(idx, minlength=27)


def _chi2(counts, probs):
    expected = counts.sum() * probs
    return float(np.sum((counts - expected) ** 2 / expected))


def test_mh_matches_boltzmann_with_and_without_lm_term():
    n = 3000
    starts = jnp.tile(ALPHABET[:1], (n, L))
    temps = jnp.ones(40)
    # Half of the chains target exp(-E), the other half exp(-E + log p0) (lm_weight = 1).
    weight = jnp.repeat(jnp.array([0.0, 1.0]), n // 2)
    _, final, trace = D.sample_chains(
        jr.key(0),
        starts,
        temps,
        toy_energy,
        conditional_proposal,
        alphabet=ALPHABET,
        designable=jnp.ones((n, L), bool),
        lm_weight=weight,
        proposal_temperature=1.5,
    )
    pi0 = np.exp(-np.asarray(TOY_E))
    pi0 /= pi0.sum()
    pi1 = np.exp(-np.asarray(TOY_E) + np.asarray(TOY_LOGP0))
    pi1 /= pi1.sum()
    c0, c1 = _empirical(final.tokens[: n // 2]), _empirical(final.tokens[n // 2 :])
    # 26 degrees of freedom: mean 26, sd 7.2; a wrong acceptance rule gives hundreds.
    assert _chi2(c0, pi0) < 60
    assert _chi2(c1, pi1) < 60
    assert _chi2(c0, pi1) > 100  # the two targets are distinguishable at this sample size
    accept = np.asarray(trace.accepted[: n // 2] & trace.changed[: n // 2]).sum()
    assert 0.2 < accept / np.asarray(trace.changed[: n // 2]).sum() < 0.95


def test_annealing_finds_the_optimum_of_a_toy_energy():
    length, k = 6, 4
    alphabet = jnp.array([4, 5, 6, 7])
    rng = np.random.default_rng(1)
    field = rng.normal(size=(length, k))
    coupling = rng.normal(size=(k, k)) * 0.7

    def energy(tokens):
        x = jnp.argmax(tokens[:, None] == alphabet[None, :], axis=-1)
        e = jnp.sum(jnp.asarray(field)[jnp.arange(length), x])
        return e + jnp.sum(jnp.asarray(coupling)[x[:-1], x[1:]]), None

    states = np.array(list(itertools.product(range(k), repeat=length)))
    brute = field[np.arange(length), states].sum(1) + coupling[states[:, :-1], states[:, 1:]].sum(1)
    best = states[np.argmin(brute)]

    def uniform(tokens, sites):
        return jnp.zeros((tokens.shape[0], k))

    chains = 8
    _, final, trace = D.sample_chains(
        jr.key(3),
        jnp.tile(alphabet[:1], (chains, length)),
        D.geometric_schedule(3.0, 0.02, 400),
        energy,
        uniform,
        alphabet=alphabet,
        designable=jnp.ones((chains, length), bool),
        max_mutations=jnp.full(chains, length),  # no limit; same compiled code as below
    )
    found = np.asarray(jnp.argmax(final.tokens[:, :, None] == alphabet, axis=-1))
    hits = (found == best).all(1)
    assert hits.sum() >= 6
    assert np.isclose(float(final.energy.min()), brute.min(), atol=1e-5)
    # The trace's energy falls on average as the temperature drops.
    e = np.asarray(trace.energy)
    assert e[:, -50:].mean() < e[:, :50].mean()
    # A trust region of 2 mutations around the start is never left.
    _, _, trace2 = D.sample_chains(
        jr.key(3),
        jnp.tile(alphabet[:1], (chains, length)),
        D.geometric_schedule(3.0, 0.02, 400),
        energy,
        uniform,
        alphabet=alphabet,
        designable=jnp.ones((chains, length), bool),
        max_mutations=jnp.full(chains, 2),
    )
    assert int(trace2.hamming.max()) == 2


# --- a small random ESM2 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    model = ESM2(ESM2Config(num_layers=1, embed_dim=16, num_heads=2, ffn_dim=32), key=jr.key(0))
    w = jr.normal(jr.key(1), (16,))

    def head(e):
        return jnp.dot(e, w)

    return model, head


def test_energy_uses_the_mean_embedding_and_penalises_low_complexity(small):
    model, head = small
    energy = eqx.filter_jit(D.DesignEnergy(model, head, penalty_weight=2.0))
    tokens = jnp.asarray(tokenize(UBIQUITIN[:30]))
    e, s = energy(tokens)
    assert np.isclose(float(s.stability), float(head(mean_embedding(model, tokens))), atol=1e-5)
    assert float(s.penalty) == 0.0
    assert np.isclose(float(e), -float(s.stability), atol=1e-6)
    _, s_low = energy(jnp.asarray(tokenize("A" * 30)))
    # 19 windows of entropy 0, each 2.2 bits short.
    assert np.isclose(float(s_low.penalty), 19 * 2.2, atol=1e-4)
    assert float(s.naturalness) < 0


def test_pseudo_log_likelihood_matches_a_loop(small):
    model, _ = small
    seq = "MKTAYIAK"
    tokens = jnp.asarray(tokenize(seq))

    @jax.jit
    def masked_logp(i, aa):
        logits = model(tokens.at[i].set(MASK)).logits[i, jnp.asarray(AMINO_ACID_IDS)]
        return jax.nn.log_softmax(logits)[aa]

    total = sum(float(masked_logp(i + 1, STANDARD_AMINO_ACIDS.index(a))) for i, a in enumerate(seq))
    pll = jax.jit(D.pseudo_log_likelihood)(model, tokens)
    assert np.isclose(float(pll), total / len(seq), atol=1e-5)


def test_design_is_deterministic_and_consistent(small):
    model, head = small
    energy = D.DesignEnergy(model, head)
    starts = [UBIQUITIN[:20], UBIQUITIN[30:44]]
    kwargs = dict(chains_per_start=2, n_steps=12, t_start=0.05, t_end=0.01, n_sites=2)
    a = D.design(jr.key(0), energy, starts, **kwargs)
    b = D.design(jr.key(0), energy, starts, **kwargs)
    c = D.design(jr.key(1), energy, starts, **kwargs)
    assert a.designs == b.designs
    np.testing.assert_array_equal(np.asarray(a.trace.energy), np.asarray(b.trace.energy))
    assert a.designs != c.designs
    assert [len(s) for s in a.designs] == [20, 20, 14, 14]
    assert a.start_index.tolist() == [0, 0, 1, 1]
    # Hamming distances in the trace agree with the decoded designs.
    for design, i, h in zip(
        a.designs, a.start_index, np.asarray(a.trace.hamming[:, -1]), strict=True
    ):
        assert sum(x != y for x, y in zip(design, starts[i], strict=True)) == h
    # Initial scores are the energy's scores of the starts; the trace keeps the final state.
    e0, _ = eqx.filter_jit(energy)(jnp.asarray(tokenize(starts[1])))
    assert np.isclose(float(a.initial.energy[2]), float(e0), atol=1e-5)
    np.testing.assert_allclose(np.asarray(a.trace.energy[:, -1]), np.asarray(a.final.energy))
    assert 0.0 <= a.acceptance_rate <= 1.0
    assert a.lm_naturalness_change.shape == (4, 12)
    assert 0.0 < a.compile_seconds < a.seconds and b.compile_seconds < a.compile_seconds


def test_bad_inputs_raise_clear_errors(small):
    model, head = small
    energy = D.DesignEnergy(model, head)
    with pytest.raises(ValueError, match="non-standard"):
        check_sequence("MKXL")
    with pytest.raises(ValueError, match="empty"):
        D.design(jr.key(0), energy, [""])
    with pytest.raises(ValueError, match="naturalness_weight"):
        D.design(jr.key(0), energy, ["MKTAYIAK"], naturalness_weight=-1.0)
    with pytest.raises(ValueError, match="n_sites"):
        D.design(jr.key(0), energy, ["MKT"], n_sites=4)
    with pytest.raises(ValueError, match="penalty_weight"):
        D.DesignEnergy(model, head, penalty_weight=-0.5)
    with pytest.raises(TypeError):
        D.design(jr.key(0), energy, "MKTAYIAK")
    with pytest.raises(ValueError, match="temperatures"):
        D.geometric_schedule(1.0, 0.0, 10)
