"""Part IV's shipped models: `pretrained(name)`, their metadata, bad input, the split, and the
trainers' smoke runs."""

import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.artifacts import read_metadata, shipped_root, verify_artifact
from tutorial_lib.generative import (
    PPCA,
    dequantise,
    labelled_split,
    load_ddpm_bits,
    pretrained,
)
from tutorial_lib.generative.bits import DEQUANTISATION_SEED, bits_per_dim
from tutorial_lib.train import TrainerConfigError, run_trainer

MODELS = ("galaxy-vae", "galaxy-flow", "galaxy-ddpm", "galaxy-gan", "galaxy-cddpm")
TRAINED = ("galaxy-vae", "galaxy-flow", "galaxy-gan", "galaxy-cddpm")


@pytest.fixture(scope="module")
def split(staged_root):
    return labelled_split()


@pytest.fixture(scope="module")
def vae():
    return pretrained("galaxy-vae")


@pytest.fixture(scope="module")
def flow():
    return pretrained("galaxy-flow")


@pytest.mark.parametrize("name", [*TRAINED, "galaxy-ddpm-bits"])
def test_the_artifacts_are_shipped_intact_with_their_record(name):
    assert verify_artifact(name, root=shipped_root()) == "ok"
    meta = read_metadata(name, root=shipped_root())
    for key in ("config", "command", "hardware", "wall_time_s", "metrics", "data"):
        assert key in meta, f"{name} metadata lacks {key}"
    assert meta["command"] == f"python -m tutorial_lib.train {name}"  # the full run, no --steps
    assert len(meta["data"]["images_sha256"]) == 64
    assert meta["wall_time_s"] > 0


def test_the_split_is_the_ddpms_and_shares_no_galaxy(split):
    assert (len(split.train), len(split.heldout)) == (1260, 140)
    assert not set(split.train_ids) & set(split.heldout_ids)
    ddpm = read_metadata("galaxy-ddpm", root=shipped_root())
    assert split.heldout_ids == ddpm["data"]["heldout_ids"]
    for name in TRAINED:
        assert read_metadata(name, root=shipped_root())["data"]["heldout_ids"] == split.heldout_ids
    # Both classes, in both sets, in about equal numbers (700 spirals of 1,400).
    for labels in (split.train_labels, split.heldout_labels):
        assert set(np.unique(labels)) == {0, 1} and 0.4 < labels.mean() < 0.6


@pytest.mark.parametrize("name", MODELS)
def test_every_model_samples_galaxies_in_the_unit_interval(name):
    model = pretrained(name)
    assert model.image_size == 32
    assert isinstance(model.metadata, dict) and "config" in model.metadata
    diffusion = name in ("galaxy-ddpm", "galaxy-cddpm")
    x = np.asarray(model.sample(jr.key(0), 2, steps=5) if diffusion else model.sample(jr.key(0), 3))
    assert x.shape[1:] == (32, 32, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.01
    assert np.all(np.isfinite(x))


def test_vae_api(vae, split):
    images = split.heldout[:10]
    z = np.asarray(vae.encode(images))
    assert z.shape == (10, vae.latent_dim) == (10, 32)
    recon = np.asarray(vae.decode(z))
    assert recon.shape == images.shape and 0 <= recon.min() and recon.max() <= 1
    # A reconstruction resembles its own galaxy more than the average galaxy does.
    own = np.sqrt(np.mean((recon - images) ** 2, axis=(1, 2, 3)))
    mean_image = split.train.mean(axis=0)
    baseline = np.sqrt(np.mean((mean_image - images) ** 2, axis=(1, 2, 3)))
    assert np.mean(own < baseline) >= 0.8
    bits = vae.bits_per_dim(images)
    assert bits.shape == (10,) and np.all(np.isfinite(bits)) and np.all((bits > 1) & (bits < 8))
    assert set(vae.sweep) == {"0.25", "1", "4"} and vae.sweep["1"] is vae


def test_flow_bits_per_dim_reproduce_the_recorded_held_out_value_and_beat_ppca(flow, split):
    bits = flow.bits_per_dim(split.heldout)
    assert bits.shape == (140,)
    recorded = flow.metadata["metrics"]["heldout_bits_per_dim"]
    assert abs(bits.mean() - recorded) < 2e-3
    y_train = np.asarray(dequantise(jr.key(0), split.train)).reshape(1260, -1)
    y_held = np.asarray(dequantise(jr.key(DEQUANTISATION_SEED), split.heldout)).reshape(140, -1)
    ppca = np.asarray(bits_per_dim(PPCA(y_train, 256).log_prob(y_held), y_held.shape[1]))
    assert 4.0 < ppca.mean() < 5.0  # the measurement: about 4.5 bits/dim
    assert bits.mean() < ppca.mean() - 0.3


def test_flow_samples_respond_to_temperature(flow):
    cold = np.asarray(flow.sample(jr.key(1), 16, temperature=0.3))
    hot = np.asarray(flow.sample(jr.key(1), 16, temperature=1.0))
    grad = [np.mean(np.abs(np.diff(x.mean(-1), axis=2))) for x in (cold, hot)]
    assert grad[0] < grad[1]  # colder samples are smoother


def test_ddpm_bits_are_shipped_for_every_held_out_galaxy():
    bits, meta = load_ddpm_bits()
    assert bits.shape == (140,) and np.all(np.isfinite(bits))
    assert abs(bits.mean() - meta["metrics"]["heldout_bits_per_dim"]) < 1e-3


# --- bad input -----------------------------------------------------------------------------------


def test_unknown_model_names_are_refused():
    with pytest.raises(ValueError, match="galaxy-vae, galaxy-flow, galaxy-ddpm, galaxy-gan"):
        pretrained("galaxy-vqvae")


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "3"])
@pytest.mark.parametrize("name", TRAINED)
def test_bad_sample_counts_are_refused(name, n):
    with pytest.raises(ValueError, match="n must be"):
        pretrained(name).sample(jr.key(0), n)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((32, 32, 3)), r"images\[None\]"),
        (np.zeros((2, 64, 64, 3)), "32x32"),
        (np.full((2, 32, 32, 3), 255.0), r"\[0, 1\]"),
        (np.zeros((2, 3, 32, 32)), "channels last"),
    ],
)
def test_bad_images_get_a_clear_error(vae, flow, images, match):
    for call in (vae.encode, vae.bits_per_dim, flow.bits_per_dim):
        with pytest.raises(ValueError, match=match):
            call(images)


def test_non_8bit_images_and_bad_latents_are_refused(vae, flow):
    with pytest.raises(ValueError, match="8-bit"):
        flow.bits_per_dim(np.full((1, 32, 32, 3), 0.5))
    with pytest.raises(ValueError, match=r"\(n, 32\)"):
        vae.decode(np.zeros((2, 16)))
    with pytest.raises(ValueError, match="temperature"):
        flow.sample(jr.key(0), 2, temperature=-1.0)


def test_gan_api():
    gan = pretrained("galaxy-gan")
    z = jr.normal(jr.key(0), (3, gan.latent_dim))
    x = np.asarray(gan.generate(z))
    assert x.shape == (3, 32, 32, 3) and 0 <= x.min() and x.max() <= 1
    np.testing.assert_allclose(np.asarray(gan.generate(z)), x)  # deterministic
    with pytest.raises(ValueError, match=r"\(n, 64\)"):
        gan.generate(np.zeros((2, 3)))


def test_conditional_ddpm_api_and_bad_requests():
    cddpm = pretrained("galaxy-cddpm")
    assert cddpm.label_names == ("non_spiral", "spiral")
    assert cddpm.label_index("spiral") == 1 and cddpm.label_index(0) == 0
    assert cddpm.label_index(None) is None
    keys = {"unconditional"} | {f"{c}@{w:g}" for c in cddpm.label_names for w in (0, 1, 2, 4)}
    assert set(cddpm.reference_samples) == keys
    for x in cddpm.reference_samples.values():
        assert x.shape == (64, 32, 32, 3) and 0 <= x.min() and x.max() <= 1
    x = np.asarray(cddpm.sample(jr.key(0), 2, label="spiral", guidance=3.0, steps=3))
    assert x.shape == (2, 32, 32, 3)
    for bad, match in [
        (dict(label=2), "unknown label 2"),
        (dict(label="elliptical"), "unknown label 'elliptical'"),
        (dict(label=True), "unknown label True"),
        (dict(label=1, guidance=-0.5), "guidance must be >= 0"),
        (dict(label=1, guidance=float("nan")), "guidance must be >= 0"),
        (dict(label=1, guidance="2"), "guidance must be a number"),
    ]:
        with pytest.raises(ValueError, match=match):
            cddpm.sample(jr.key(0), 2, **bad)


def test_the_conditional_model_learned_its_labels():
    """Held-out denoising error: the true label helps, the wrong one hurts (trainer's record)."""
    m = read_metadata("galaxy-cddpm", root=shipped_root())["metrics"]
    assert m["heldout_v_mse_true_label"] < m["heldout_v_mse_null_label"]
    assert m["heldout_v_mse_null_label"] < m["heldout_v_mse_wrong_label"]


# --- trainers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*TRAINED, "galaxy-ddpm-bits"])
def test_smoke_runs_are_refused_by_the_package_before_any_work(name, monkeypatch):
    monkeypatch.delenv("JAXGENAI_ARTIFACTS", raising=False)
    with pytest.raises(TrainerConfigError, match="refusing to install"):
        run_trainer(name, steps=2, install=True)


@pytest.mark.parametrize("name", ["galaxy-vae", "galaxy-flow", "galaxy-gan"])
def test_a_smoke_run_trains_writes_elsewhere_and_loads(name, staged_root, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGENAI_CACHE", str(tmp_path / "cache"))
    folder = run_trainer(name, steps=2, root=tmp_path / "out")
    assert folder == tmp_path / "out" / name
    model = pretrained(name, root=tmp_path / "out")
    assert model.metadata["config"]["steps"] == 2
    assert model.metadata["command"] == f"python -m tutorial_lib.train {name} --steps 2"
    if name != "galaxy-gan":  # a GAN has no likelihood
        assert np.isfinite(model.metadata["metrics"]["heldout_bits_per_dim"])
    assert np.asarray(model.sample(jr.key(0), 2)).shape == (2, 32, 32, 3)


def test_batched_pads_every_chunk_to_one_shape_and_drops_the_padding():
    from tutorial_lib.generative.models import _batched

    seen = []

    def fn(x, k):
        seen.append((x.shape, k.shape))
        return x * 2, x.sum(axis=1) + jr.uniform(k[0], ())

    x = np.arange(11 * 3, dtype=np.float32).reshape(11, 3)
    keys = jr.split(jr.key(0), 11)
    doubled, sums = _batched(fn, x, keys, size=4)
    assert seen == [((4, 3), (4,))] * 3  # 11 rows: 4 + 4 + 3, the last padded to 4
    np.testing.assert_array_equal(doubled, 2 * x)
    assert sums.shape == (11,)


def test_flow_samples_in_padded_chunks_equal_one_unpadded_call(flow):
    import jax.numpy as jnp

    from tutorial_lib.generative.models import _flow_sample

    keys = jr.split(jr.key(3), 3)
    direct = np.transpose(
        np.asarray(_flow_sample(flow.model, keys, jnp.float32(0.7))), (0, 2, 3, 1)
    )
    np.testing.assert_allclose(
        np.asarray(flow.sample(jr.key(3), 3, temperature=0.7)), direct, atol=1e-5
    )
