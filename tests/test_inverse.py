"""Measurement operators, posterior sampling and the classical baselines."""

import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest
from gaussian_eps import GaussianEps

from tutorial_lib.diffusion import CosineSchedule
from tutorial_lib.diffusion.inverse import (
    Blur,
    Inpainting,
    biharmonic_inpaint,
    box_mask,
    dps_sample,
    gaussian_psf,
    psnr,
    random_mask,
    wiener_deconvolve,
    zeta_sweep,
)


def test_gaussian_psf_has_the_requested_fwhm_and_unit_sum():
    psf = np.asarray(gaussian_psf(64, fwhm=6.0))
    assert abs(psf.sum() - 1) < 1e-5
    # Half the peak at half the FWHM from the centre (pixel (0, 0), wrapped).
    assert abs(psf[0, 3] / psf[0, 0] - 0.5) < 1e-3
    with pytest.raises(ValueError, match="fwhm must be positive"):
        gaussian_psf(8, 0.0)


def test_blur_of_a_point_is_the_psf_and_keeps_the_flux():
    psf = gaussian_psf(16, 3.0)
    point = jnp.zeros((1, 16, 16)).at[0, 5, 7].set(1.0)
    blurred = Blur(psf)(point)
    np.testing.assert_allclose(blurred[0], jnp.roll(psf, (5, 7), axis=(0, 1)), atol=1e-6)
    x = jr.uniform(jr.key(0), (3, 16, 16))
    np.testing.assert_allclose(Blur(psf)(x).sum(), x.sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        Blur(psf)(jnp.zeros((3, 8, 8)))


def test_masks():
    m = box_mask(8, 2, 3, 2, 4)
    assert float(m.sum()) == 64 - 8 and float(m[2, 3]) == 0.0 and float(m[4, 3]) == 1.0
    r = random_mask(jr.key(0), 100, keep=0.3)
    assert abs(float(r.mean()) - 0.3) < 0.02
    np.testing.assert_array_equal(Inpainting(m)(jnp.ones((3, 8, 8)))[1], m)


def test_dps_fits_the_kept_pixels_and_leaves_the_rest_to_the_prior():
    schedule, mu, sd = CosineSchedule(), 0.0, 0.5
    prior = GaussianEps(schedule, mu, sd)
    truth = mu + sd * jr.normal(jr.key(1), (64, 1, 8, 8))
    mask = random_mask(jr.key(2), 8, keep=0.5)
    y = jax.vmap(lambda k, x: Inpainting(mask).observe(k, x, 0.02))(jr.split(jr.key(3), 64), truth)
    x = np.asarray(
        dps_sample(prior, schedule, Inpainting(mask), y, jr.key(4), steps=100, zeta=0.3).images
    )
    kept, lost = np.asarray(mask) == 1, np.asarray(mask) == 0
    err_kept = np.sqrt(np.mean((x - np.asarray(truth))[..., kept] ** 2))
    assert err_kept < 0.15 * sd  # the data pin the observed pixels down (measured: 0.11 sd)
    # The lost pixels are independent of the kept ones under this prior: they are prior draws.
    lost_values = x[..., lost].ravel()
    assert abs(lost_values.mean() - mu) < 0.05 and abs(lost_values.std() - sd) < 0.08
    with pytest.raises(ValueError, match="batch of observations"):
        dps_sample(prior, schedule, Inpainting(mask), y[0], jr.key(4))


def test_classical_baselines_beat_doing_nothing():
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    truth = np.stack([0.2 + 0.6 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.4) ** 2) / 0.02)] * 3)
    psf = gaussian_psf(32, 3.0)
    blurred = np.asarray(Blur(psf)(jnp.asarray(truth)))
    restored = wiener_deconvolve(blurred, np.asarray(psf), balance=1e-3)
    assert psnr(restored, truth) > psnr(blurred, truth) + 3
    mask = np.asarray(box_mask(32, 10, 10, 8, 8))
    filled = biharmonic_inpaint(truth * mask, mask)
    assert psnr(filled, truth) > psnr(truth * mask, truth) + 15


def test_zeta_sweep_rewards_listening_to_the_data():
    schedule, sd = CosineSchedule(), 0.4
    prior = GaussianEps(schedule, 0.0, sd)
    truth = sd * jr.normal(jr.key(1), (16, 1, 8, 8))
    mask = random_mask(jr.key(2), 8, keep=0.5)
    scores = zeta_sweep(
        prior,
        schedule,
        Inpainting(mask),
        truth,
        jr.key(3),
        zetas=(0.0, 0.3),
        steps=50,
        noise_sd=0.02,
    )
    assert list(scores) == [0.0, 0.3]
    # zeta = 0 ignores y (a prior draw); a data term must pay off on the kept half of the pixels.
    assert scores[0.3] > scores[0.0] + 2, scores
    # One image, not a batch: the shape contract (or, unchecked, the function) names `truth`.
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="truth"):
        zeta_sweep(prior, schedule, Inpainting(mask), truth[0], jr.key(3))
