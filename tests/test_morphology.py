"""Galaxy morphology summaries on synthetic images with known answers."""

import numpy as np
import pytest

from tutorial_lib.diffusion import morphology as m


def blob(s, sigma, centre=None, *, q=1.0, angle=0.0, rgb=(1.0, 1.0, 1.0), amp=0.8):
    """An elliptical Gaussian of major-axis width `sigma` and axis ratio `q`, `(s, s, 3)`."""
    cy, cx = ((s - 1) / 2,) * 2 if centre is None else centre
    y, x = np.mgrid[:s, :s].astype(float)
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    g = amp * np.exp(-0.5 * (u**2 / sigma**2 + v**2 / (q * sigma) ** 2))
    return g[..., None] * np.asarray(rgb)


def disc(s, radius, amp=0.5):
    y, x = np.mgrid[:s, :s]
    flat = amp * (np.hypot(y - (s - 1) / 2, x - (s - 1) / 2) <= radius)
    return np.repeat(flat[..., None], 3, axis=-1).astype(float)


def gaussian_concentration():
    # A 2-D Gaussian encloses f of its flux within r_f = sigma sqrt(-2 ln(1 - f)).
    r20, r80 = np.sqrt(-2 * np.log(0.8)), np.sqrt(-2 * np.log(0.2))
    return 5 * np.log10(r80 / r20)


# ----- sky and profiles --------------------------------------------------------------------


def test_background_is_the_median_of_the_border():
    rng = np.random.default_rng(0)
    sky = np.array([0.05, 0.07, 0.10])
    images = np.clip(sky + blob(32, 3) + rng.normal(0, 0.01, (4, 32, 32, 3)), 0, 1)
    bg = m.background(images)
    assert bg.shape == (4, 3)
    np.testing.assert_allclose(bg, np.broadcast_to(sky, (4, 3)), atol=0.003)


def test_luminance_removes_the_sky_and_is_non_negative():
    image = np.array([0.05, 0.07, 0.10]) + blob(32, 3)
    lum = m.luminance(image[None])
    assert lum.shape == (1, 32, 32)
    assert lum.min() >= 0
    np.testing.assert_allclose(lum[0], blob(32, 3)[..., 0], atol=1e-3)


def test_radial_profile_of_a_gaussian_falls_off_as_a_gaussian():
    images = np.stack([blob(64, 4), blob(64, 4, (30.2, 35.6))])
    radii, profiles = m.radial_profile(images)
    assert radii.shape == (32,) and profiles.shape == (2, 32)
    np.testing.assert_allclose(radii[:3], [0.5, 1.5, 2.5])
    expected = 0.8 * np.exp(-(radii**2) / (2 * 4**2))
    np.testing.assert_allclose(profiles, np.broadcast_to(expected, (2, 32)), atol=0.03)
    assert np.all(np.diff(profiles[:, :20], axis=1) < 0)
    assert m.radial_profile(images, n_bins=10)[1].shape == (2, 10)


# ----- concentration -----------------------------------------------------------------------


def test_analytic_gaussian_concentration():
    assert gaussian_concentration() == pytest.approx(2.145, abs=1e-3)


@pytest.mark.parametrize("centre", [(31.5, 31.5), (31.0, 31.0), (29.3, 34.8), (35.6, 28.1)])
def test_concentration_of_a_gaussian_matches_the_analytic_value(centre):
    c = m.concentration(blob(64, 4, centre)[None])
    assert c.shape == (1,)
    assert c[0] == pytest.approx(gaussian_concentration(), abs=0.15)


def test_concentration_of_a_uniform_disc():
    # r_f = R sqrt(f), so C = 5 log10 2.
    assert m.concentration(disc(64, 12)[None])[0] == pytest.approx(5 * np.log10(2), abs=0.1)


def test_a_peaked_profile_is_more_concentrated_than_a_flat_disc():
    # A Gaussian core on a faint extended disc, as in a bulge-dominated galaxy.
    peaked = blob(64, 2) + disc(64, 20, amp=0.02)
    c_peaked, c_flat = m.concentration(np.stack([peaked, disc(64, 12)]))
    assert c_peaked > c_flat + 1.0


# ----- asymmetry ---------------------------------------------------------------------------


def test_point_symmetric_images_have_zero_asymmetry():
    symmetric = np.stack(
        [
            blob(64, 4),
            blob(64, 5, q=0.4, angle=0.7),
            blob(64, 4, (30.3, 35.7)),  # off the image centre: the centroid shift re-centres it
            blob(64, 3, (24.5, 31.5)) + blob(64, 3, (38.5, 31.5)),  # a symmetric pair
        ]
    )
    np.testing.assert_array_less(m.asymmetry(symmetric), 0.02)


def test_a_lopsided_double_blob_is_asymmetric():
    lopsided = blob(64, 4) + blob(64, 2, (20.0, 40.0), amp=0.3)
    a_sym, a_lop = m.asymmetry(np.stack([blob(64, 4), lopsided]))
    assert a_lop > 0.15 > a_sym
    assert a_lop <= 1.0


# ----- ellipticity -------------------------------------------------------------------------


def test_ellipticity_of_round_and_elongated_gaussians():
    images = np.stack(
        [
            blob(64, 5),
            blob(64, 6, q=0.5),
            blob(64, 6, (33.2, 30.6), q=0.5, angle=np.pi / 5),
            blob(64, 6, q=0.25, angle=np.pi / 2),
        ]
    )
    np.testing.assert_allclose(m.ellipticity(images), [0.0, 0.5, 0.5, 0.75], atol=0.05)


# ----- colour ------------------------------------------------------------------------------


def test_redder_galaxies_have_larger_colour_index():
    red, grey, blue = (blob(32, 3, rgb=c) for c in [(1, 0.6, 0.5), (1, 1, 1), (0.5, 0.6, 1)])
    c_red, c_grey, c_blue = m.colour(np.stack([red, grey, blue]))
    # 2.5 log10(F_R / F_B) with F_R / F_B = 2, 1, 1/2.
    np.testing.assert_allclose([c_red, c_grey, c_blue], [0.753, 0.0, -0.753], atol=1e-3)


def test_colour_is_finite_when_a_channel_is_empty():
    only_red = blob(32, 3, rgb=(1, 0, 0))
    c = m.colour(only_red[None])
    assert np.isfinite(c[0]) and c[0] > 2


# ----- summaries ---------------------------------------------------------------------------


def test_summaries_are_batched_and_ignore_a_constant_sky():
    images = np.stack([blob(32, 3), blob(32, 4, (14.2, 16.9), q=0.6, rgb=(1, 0.7, 0.5))])
    s = m.summaries(images)
    assert tuple(s) == m.SUMMARY_KEYS
    assert all(v.shape == (2,) for v in s.values())
    one_at_a_time = [m.summaries(im[None]) for im in images]
    with_sky = m.summaries(images + np.array([0.05, 0.07, 0.10]))
    for k in m.SUMMARY_KEYS:
        np.testing.assert_allclose(s[k], [d[k][0] for d in one_at_a_time], atol=1e-12)
        np.testing.assert_allclose(with_sky[k], s[k], atol=1e-9)


def test_an_empty_sky_gives_nan_shapes_without_warnings():
    with np.errstate(all="raise"):
        s = m.summaries(np.full((1, 32, 32, 3), 0.1))
    assert s["colour"][0] == 0.0
    assert all(np.isnan(s[k][0]) for k in ("concentration", "asymmetry", "ellipticity"))


# ----- nearest neighbours and distributions ------------------------------------------------


def test_nearest_neighbour_finds_an_exact_copy():
    refs = np.random.default_rng(1).uniform(size=(50, 8, 8, 3))
    d, i = m.nearest_neighbour_distances(refs[[7, 3, 41]], refs, batch=2)
    np.testing.assert_array_equal(i, [7, 3, 41])
    np.testing.assert_allclose(d, 0.0, atol=1e-6)


def test_nearest_neighbour_matches_brute_force():
    rng = np.random.default_rng(2)
    refs, queries = rng.uniform(size=(40, 6, 6, 3)), rng.uniform(size=(13, 6, 6, 3))
    brute = np.sqrt(((queries[:, None] - refs[None]) ** 2).mean(axis=(2, 3, 4)))
    d, i = m.nearest_neighbour_distances(queries, refs, batch=5)
    np.testing.assert_array_equal(i, brute.argmin(axis=1))
    np.testing.assert_allclose(d, brute.min(axis=1), rtol=1e-9)


def test_exclude_self_ignores_the_diagonal():
    refs = np.random.default_rng(3).uniform(size=(30, 6, 6, 3))
    refs[10] = refs[4]
    d, i = m.nearest_neighbour_distances(refs, refs, batch=7, exclude_self=True)
    assert np.all(i != np.arange(30))
    assert (i[4], i[10]) == (10, 4)
    np.testing.assert_allclose(d[[4, 10]], 0.0, atol=1e-6)
    assert np.all(np.delete(d, [4, 10]) > 0.1)


def test_wasserstein_of_a_shifted_sample_is_the_shift():
    a = np.random.default_rng(4).normal(size=500)
    assert m.wasserstein_1d(a, a + 0.3) == pytest.approx(0.3)
    assert m.wasserstein_1d(a, a) == 0.0


# ----- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((32, 32, 3)), r"shape \(n, s, s, 3\).*images\[None\]"),
        (np.zeros((2, 32, 32, 1)), r"shape \(n, s, s, 3\)"),
        (np.zeros((2, 32, 3, 32)), r"channels last"),
        (np.zeros((2, 32, 16, 3)), r"square"),
        (np.zeros((0, 32, 32, 3)), r"at least one image"),
        (np.zeros((2, 6, 6, 3)), r"side s > 7"),
        (np.full((2, 32, 32, 3), np.nan), r"NaN"),
        (np.full((2, 32, 32, 3), -0.5), r"\[0, 1\].*np\.clip"),
        (np.full((2, 32, 32, 3), 2.0), r"\[0, 1\]"),
    ],
)
def test_bad_images_raise_a_helpful_error(images, match):
    with pytest.raises(ValueError, match=match):
        m.summaries(images)


@pytest.mark.parametrize("n_bins", [0, -3, 2.5, True])
def test_bad_n_bins_raises(n_bins):
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        m.radial_profile(np.zeros((1, 32, 32, 3)), n_bins=n_bins)


def test_bad_nearest_neighbour_arguments_raise():
    a, b = np.zeros((3, 8, 8, 3)), np.zeros((4, 8, 8, 3))
    with pytest.raises(ValueError, match="same shape"):
        m.nearest_neighbour_distances(a, np.zeros((4, 16, 16, 3)))
    with pytest.raises(ValueError, match="pass the same array twice"):
        m.nearest_neighbour_distances(a, b, exclude_self=True)
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        m.nearest_neighbour_distances(a, b, batch=0)
    with pytest.raises(ValueError, match="at least one query"):
        m.nearest_neighbour_distances(a, b[:0])
    with pytest.raises(ValueError, match="non-empty"):
        m.wasserstein_1d([], [1.0])
