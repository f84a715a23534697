"""Bad input to the data loaders, ESM2 and the diffusion samplers: clear errors, never crashes."""

import tempfile
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from gaussian_eps import GaussianEps
from hypothesis import given, settings
from hypothesis import strategies as st
from random_esm2 import random_esm2

from tutorial_lib import data
from tutorial_lib.data import (
    DataError,
    DownloadError,
    FastaRecord,
    format_fasta,
    parse_fasta,
    read_fasta,
)
from tutorial_lib.data._fetch import DataRootError
from tutorial_lib.data.fasta import PROTEIN_ALPHABET
from tutorial_lib.data.galaxies import CacheRebuiltWarning
from tutorial_lib.diffusion import (
    CosineSchedule,
    GalaxyDDPM,
    ancestral_sample,
    ddim_sample,
    ode_sample,
)
from tutorial_lib.protein import ESM2Config, forward_batch, tokenize
from tutorial_lib.protein.esm2 import LongSequenceWarning

# ----- galaxy cache ------------------------------------------------------------------------


def _damage(path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    if how == "zero-byte":
        raw = b""
    elif how == "truncated":
        raw = raw[:mid]
    elif how == "bit-flipped":
        raw[mid : mid + 16] = bytes(b ^ 0xFF for b in raw[mid : mid + 16])
    elif how == "missing-key":
        with np.load(path) as z:
            np.savez(path, images=z["images"], labels=z["labels"])
        return
    elif how == "mismatched-lengths":
        with np.load(path) as z:
            np.savez(path, images=z["images"], labels=z["labels"][:-1], ids=z["ids"])
        return
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "how", ["zero-byte", "truncated", "bit-flipped", "missing-key", "mismatched-lengths"]
)
def test_a_damaged_galaxy_cache_is_deleted_and_rebuilt(how, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGENAI_CACHE", str(tmp_path))
    fresh = data.load_galaxies(16, "hubble-deep-field")
    (path,) = (tmp_path / "galaxies").glob("*.npz")
    _damage(path, how)
    with pytest.warns(CacheRebuiltWarning, match=r"galaxy cache .*\.npz is damaged") as caught:
        healed = data.load_galaxies(16, "hubble-deep-field")
    assert sum(isinstance(w.message, CacheRebuiltWarning) for w in caught) == 1
    np.testing.assert_array_equal(healed.images, fresh.images)
    np.testing.assert_array_equal(healed.labels, fresh.labels)
    assert healed.ids == fresh.ids
    with np.load(path) as z:  # the cache file is valid again
        assert {"images", "labels", "ids"} <= set(z.files)
        np.testing.assert_array_equal(z["labels"], fresh.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheRebuiltWarning)
        data.load_galaxies(16, "hubble-deep-field")


# ----- a mistyped $JAXGENAI_DATA ------------------------------------------------------------


@pytest.mark.parametrize("offline", [False, True])
def test_a_missing_data_root_is_refused_and_never_created(
    offline, tmp_path, monkeypatch, closed_port_url
):
    typo = tmp_path / "shraed" / "data"
    monkeypatch.setenv("JAXGENAI_DATA", str(typo))
    monkeypatch.setenv("JAXGENAI_DATA_MIRROR", closed_port_url)
    monkeypatch.setenv("JAXGENAI_OFFLINE", "1" if offline else "0")
    pattern = r"folder named by JAXGENAI_DATA does not exist.*Fix the path, or unset"
    with pytest.raises(DataRootError, match=pattern) as info:
        data.fetch_file("thermoprot/psychrophilic.fasta")
    assert str(typo) in str(info.value)
    assert isinstance(info.value, DataError) and not isinstance(info.value, DownloadError)
    with pytest.raises(DataRootError, match=pattern):
        data.fetch_dataset("thermoprot")
    with pytest.raises(DataRootError, match=pattern):  # no quiet fallback to the Hubble images
        data.load_galaxies(16, source="auto")
    assert not (tmp_path / "shraed").exists()


# ----- FASTA --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"", b"\n\n   \n", b"; a comment\n;another\r\n\r\n", b"\xef\xbb\xbf"]
)
def test_read_fasta_refuses_a_file_without_records(content, tmp_path):
    path = tmp_path / "empty.fasta"
    path.write_bytes(content)
    with pytest.raises(DataError, match="holds no FASTA records") as info:
        read_fasta(path)
    assert str(path) in str(info.value)
    assert parse_fasta(content.decode()) == []  # a string may be empty


fasta_like = st.text(alphabet=">;*- \t\n\r1ıÉ" + PROTEIN_ALPHABET + PROTEIN_ALPHABET.lower())


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(), fasta_like))
def test_parse_fasta_returns_valid_records_or_a_data_error(text):
    try:
        recs = parse_fasta(text)
    except DataError:
        return
    for rec in recs:
        assert rec.sequence and set(rec.sequence) <= set(PROTEIN_ALPHABET)


@settings(max_examples=100, deadline=None)
@given(st.binary())
def test_read_fasta_of_any_bytes_returns_records_or_a_data_error(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.fasta"
        path.write_bytes(raw)
        try:
            recs = read_fasta(path)
        except DataError:
            return
    assert recs and all(set(r.sequence) <= set(PROTEIN_ALPHABET) for r in recs)


names = st.text(st.characters(exclude_characters="\r\n"), max_size=20).map(str.strip)
valid_records = st.lists(
    st.tuples(names, st.text(PROTEIN_ALPHABET, min_size=1, max_size=100)), max_size=6
)


@settings(max_examples=100, deadline=None)
@given(valid_records, st.integers(1, 70))
def test_format_then_parse_is_the_identity(recs, width):
    assert parse_fasta(format_fasta(recs, width=width)) == [FastaRecord(*r) for r in recs]


# ----- ESM2 ---------------------------------------------------------------------------------

SMALL = ESM2Config(num_layers=2, embed_dim=32, num_heads=4, ffn_dim=64)


@pytest.fixture(scope="module")
def esm():
    return random_esm2(SMALL, 0)


@pytest.mark.parametrize("length", [0, 1, 2])
def test_contacts_of_an_empty_sequence_are_a_clear_error(esm, length):
    tokens = jnp.asarray(tokenize(""))[:length]
    message = "empty token array" if length == 0 else "at least one residue between <cls>"
    for call in (esm, eqx.filter_jit(esm)):
        with pytest.raises(ValueError, match=message):
            call(tokens, return_contacts=True)
    assert esm(jnp.asarray(tokenize("M")), return_contacts=True).contacts.shape == (1, 1)


def test_an_empty_token_array_is_a_clear_error(esm):
    with pytest.raises(ValueError, match=r"empty token array.*tokenize"):
        esm(jnp.zeros(0, jnp.int32))


@pytest.mark.parametrize("bad", [-1, 33, 1000])
def test_out_of_range_token_ids_are_refused(esm, bad):
    tokens = jnp.asarray(tokenize("MKTAYIAK")).at[3].set(bad)
    pattern = r"token ids must be in 0\.\.32.*tutorial_lib\.protein\.tokenize"
    for call in (lambda t: esm(t), eqx.filter_jit(lambda t: esm(t).logits)):
        with pytest.raises(eqx.EquinoxRuntimeError, match=pattern):
            jax.block_until_ready(call(tokens))
    with pytest.raises(eqx.EquinoxRuntimeError, match=pattern):
        jax.block_until_ready(forward_batch(esm, jnp.stack([tokens, tokens])))


def test_sequences_beyond_the_trained_length_warn_once_per_shape(esm):
    fits = jnp.full(1024, 5, jnp.int32).at[0].set(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LongSequenceWarning)
        esm(fits)
    long = jnp.full(1030, 5, jnp.int32).at[0].set(0)
    run = eqx.filter_jit(lambda m, t: jax.vmap(m)(t).logits)
    with pytest.warns(LongSequenceWarning, match=r"1030 tokens.*at most 1,022 residues"):
        run(esm, long[None])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LongSequenceWarning)
        run(esm, long[None])  # compiled already: no second warning for the same shape


# ----- diffusion samplers -------------------------------------------------------------------

SCHEDULE = CosineSchedule()


class TinyEps(GaussianEps):
    """The exact noise predictor of Gaussian 2x2 RGB "galaxies", with a network's attributes."""

    @property
    def image_size(self) -> int:
        return 2

    @property
    def channels(self) -> int:
        return 3


GALAXY = GalaxyDDPM(TinyEps(SCHEDULE, 0.0, 0.5), SCHEDULE, np.zeros((0, 2, 2, 3)), {})
SAMPLERS = {"ddim": ddim_sample, "ddpm": ancestral_sample}


@pytest.mark.parametrize("steps", [2.5, 1.0, True, False, 0, -3, None, "10"])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_bad_steps_are_a_clear_error(sampler, steps):
    with pytest.raises(ValueError, match=r"steps must be a positive int") as info:
        GALAXY.sample(jr.key(0), 1, sampler=sampler, steps=steps)
    assert f"got {steps!r}" in str(info.value)
    with pytest.raises(ValueError, match=r"steps must be a positive int"):
        SAMPLERS[sampler](GALAXY.model, SCHEDULE, jr.key(0), 1, (3, 2, 2), steps=steps)


def test_numpy_integers_are_accepted():
    images = GALAXY.sample(jr.key(0), np.int64(2), steps=np.int32(3))
    assert images.shape == (2, 2, 2, 3)
    result = ode_sample(GALAXY.model, SCHEDULE, jr.key(0), np.int64(2), (3, 2, 2))
    assert result.images.shape == (2, 3, 2, 2)
    assert GALAXY.sample_with_info(jr.key(0), 1, steps=np.int64(4)).nfe == 4


def _is_count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


anything = st.one_of(
    st.integers(-2, 3), st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=3)
)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["ddim", "ddpm"]), anything, anything, st.booleans())
def test_sampler_arguments_give_a_result_or_a_clear_error(sampler, n, steps, via_galaxy):
    valid = _is_count(n) and _is_count(steps)
    try:
        if via_galaxy:
            out = GALAXY.sample(jr.key(0), n, sampler=sampler, steps=steps)
        else:
            model = GALAXY.model
            out = SAMPLERS[sampler](model, SCHEDULE, jr.key(0), n, (3, 2, 2), steps=steps).images
    except ValueError as e:
        assert not valid, e
        assert "must be a positive int" in str(e)
        return
    assert valid
    assert out.shape == ((n, 2, 2, 3) if via_galaxy else (n, 3, 2, 2))
    assert bool(jnp.isfinite(out).all())
