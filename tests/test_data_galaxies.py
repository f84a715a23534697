"""Galaxy loaders, preprocessing, cache and dihedral augmentation."""

import os
import time
import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib import data


@pytest.fixture(scope="module")
def zoo32(staged_root, tmp_path_factory):
    """Two loads of the staged Galaxy Zoo images into a fresh cache."""
    env = {"JAXGENAI_DATA": str(staged_root), "JAXGENAI_CACHE": str(tmp_path_factory.mktemp("c"))}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        start = time.perf_counter()
        first = data.load_galaxies(size=32)
        t_first = time.perf_counter() - start
        start = time.perf_counter()
        second = data.load_galaxies(size=32)
        t_second = time.perf_counter() - start
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return first, second, (t_first, t_second), env["JAXGENAI_CACHE"]


def test_galaxy_zoo_on_the_staged_data(zoo32):
    gal, *_ = zoo32
    assert gal.source == "galaxy-zoo"
    assert gal.images.shape == (1_400, 32, 32, 3) and gal.images.dtype == np.float32
    assert 0.0 <= gal.images.min() and gal.images.max() <= 1.0
    assert gal.label_names == ("non_spiral", "spiral")
    assert np.bincount(gal.labels).tolist() == [700, 700]
    assert len(set(gal.ids)) == 1_400
    # Galaxies sit in the middle of their stamp: the centre is brighter than the corners.
    centre = gal.images[:, 12:20, 12:20].mean()
    corners = gal.images[:, :4, :4].mean()
    assert centre > 3 * corners


def test_second_load_is_cached_and_identical(zoo32):
    first, second, (t_first, t_second), _ = zoo32
    assert np.array_equal(first.images, second.images)
    assert np.array_equal(first.labels, second.labels)
    assert t_first >= 5 * t_second, (t_first, t_second)


def test_canonical_preprocessing_matches_an_explicit_box_average():
    rng = np.random.default_rng(0)
    stamp = rng.integers(0, 256, (424, 424, 3), dtype=np.uint8)
    out = data.centre_crop_resize(stamp, 53)  # 212 / 53 = 4: exact 4x4 box means
    crop = stamp[106:318, 106:318].astype(np.float64)
    expected = crop.reshape(53, 4, 53, 4, 3).mean(axis=(1, 3))
    assert out.shape == (53, 53, 3) and out.dtype == np.uint8
    assert np.abs(out - expected).max() <= 1.0  # PIL's fixed-point arithmetic: 1 level


def test_preprocessing_of_one_staged_file(staged_root, zoo32):
    from PIL import Image

    gal, *_ = zoo32
    i = gal.ids.index("100263") if "100263" in gal.ids else 0
    folder = "spiral" if gal.labels[i] == 1 else "non_spiral"
    with Image.open(staged_root / "galaxy-zoo" / folder / f"{gal.ids[i]}.jpg") as im:
        assert im.size == (424, 424)
        expected = data.centre_crop_resize(np.asarray(im.convert("RGB")), 32)
    np.testing.assert_array_equal(np.round(gal.images[i] * 255).astype(np.uint8), expected)


def test_hubble_deep_field_cutouts_are_detected_sources():
    centres, areas = data.detect_sources(__import__("skimage").data.hubble_deep_field())
    assert len(centres) > 300 and areas.min() >= 50
    gal = data.load_galaxies(size=24, source="hubble-deep-field")
    assert gal.source == "hubble-deep-field" and gal.label_names == ("unlabelled",)
    assert 300 < len(gal) <= len(centres)
    assert gal.images.shape[1:] == (24, 24, 3)
    # Each cutout is centred on its source: the centre is brighter than the border.
    assert gal.images[:, 9:15, 9:15].mean() > 2 * gal.images[:, :3, :].mean()


def test_auto_falls_back_to_hubble_with_a_warning(empty_root, monkeypatch, closed_port_url):
    monkeypatch.setenv("JAXGENAI_DATA_MIRROR", closed_port_url)
    start = time.perf_counter()
    with pytest.warns(data.GalaxyFallbackWarning, match="UNLABELLED"):
        gal = data.load_galaxies(size=16)
    assert time.perf_counter() - start < 30
    assert gal.source == "hubble-deep-field"


def test_auto_prefers_the_staged_galaxy_zoo(staged, zoo32, monkeypatch):
    monkeypatch.setenv("JAXGENAI_CACHE", zoo32[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.load_galaxies(size=32).source == "galaxy-zoo"


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown galaxy source"):
        data.load_galaxies(source="sdss-dr19")
    with pytest.raises(ValueError, match="size"):
        data.load_galaxies(size=1000)


def test_dihedral_group():
    image = jr.normal(jr.key(0), (5, 5, 3))
    images = data.all_dihedral(image)
    assert images.shape == (8, 5, 5, 3)
    flat = np.asarray(images).reshape(8, -1)
    assert len({row.tobytes() for row in flat}) == 8  # 8 distinct symmetries
    np.testing.assert_array_equal(images[0], image)
    np.testing.assert_array_equal(images[1], jnp.rot90(image))
    np.testing.assert_array_equal(images[4], image[:, ::-1])
    for k in range(8):  # each is a bijection of pixel positions: the multiset of values stays
        np.testing.assert_allclose(np.sort(flat[k]), np.sort(flat[0]))
        # applying symmetry k to all 8 gives the 8 again (closure)
        again = {np.asarray(data.dihedral(x, k)).tobytes() for x in images}
        assert again == {row.tobytes() for row in np.asarray(images)}


def test_random_dihedral_is_jittable_and_seeded():
    images = jr.uniform(jr.key(1), (64, 8, 8, 3))
    f = jax.jit(data.random_dihedral)
    out = f(jr.key(2), images)
    np.testing.assert_array_equal(out, f(jr.key(2), images))
    assert out.shape == images.shape
    assert not np.array_equal(out, images)
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), images.sum(axis=(1, 2, 3)), rtol=1e-5)
