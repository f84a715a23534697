"""Full-waveform inversion: the vmapped forward model, its gradient, and a tiny inversion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tutorial_lib.jax_science import fwi, wave

N = 48


@pytest.fixture(scope="module")
def survey():
    return fwi.make_survey(N, extent=480.0, n_sources=2, f0=20.0, duration=0.35)


@pytest.fixture(scope="module")
def models(survey):
    z = np.arange(N)[:, None] * survey.dx
    x = np.arange(N)[None, :] * survey.dx
    background = np.broadcast_to(2000.0 + 0.5 * z, (N, N)).astype(np.float32)
    blob = 250.0 * np.exp(-((z - 240) ** 2 + (x - 240) ** 2) / (2 * 50.0**2))
    return background, (background + blob).astype(np.float32)


def test_survey_geometry(survey):
    assert survey.shape == (N, N)
    assert survey.sources.shape == (2, 2)
    assert survey.dt == pytest.approx(0.5 * survey.dx / 3000.0)
    # every source and receiver sits inside the grid and outside the region being inverted
    mask = np.asarray(survey.mask)
    for iz, ix in np.concatenate([survey.sources, survey.receivers]):
        assert 0 < iz < N - 1 and 0 < ix < N - 1
        assert mask[iz, ix] == 0
    assert 0.1 < mask.mean() < 0.6


def test_vmapped_forward_matches_the_public_simulation(survey, models):
    _, true = models
    traces = fwi.forward(true, survey)
    assert traces.shape == (2, len(survey.wavelet), len(survey.receivers))
    for s, source in enumerate(np.asarray(survey.sources)):
        _, expected = wave.simulate_jax(
            true,
            dx=survey.dx,
            dt=survey.dt,
            wavelet=survey.wavelet,
            source=tuple(int(i) for i in source),
            receivers=np.asarray(survey.receivers),
            damping=survey.damping,
        )
        scale = float(jnp.abs(expected).max())
        assert scale > 1e-3
        np.testing.assert_allclose(traces[s], expected, atol=1e-5 * scale, rtol=0)


def test_misfit_gradient_matches_finite_differences(survey, models):
    background, true = models
    observed = fwi.forward(true, survey)
    direction = jnp.asarray(survey.mask) * 1.0  # +1 m/s everywhere in the target region
    grad = jax.grad(fwi.misfit)(jnp.asarray(background), observed, survey)
    eps = 2.0
    plus = fwi.misfit(background + eps * direction, observed, survey)
    minus = fwi.misfit(background - eps * direction, observed, survey)
    fd = (plus - minus) / (2 * eps)
    directional = jnp.vdot(grad, direction)
    assert float(directional) < 0  # the true model is faster: speeding up reduces the misfit
    np.testing.assert_allclose(float(directional), float(fd), rtol=2e-2)
    assert float(fwi.misfit(true, observed, survey)) == 0.0


def test_a_tiny_inversion_reduces_misfit_and_model_error(survey, models):
    background, true = models
    observed = fwi.forward(true, survey)
    errors = []
    velocity, history = fwi.invert(
        background,
        observed,
        survey,
        iterations=15,
        learning_rate=20.0,
        callback=lambda i, v: errors.append(fwi.model_error(v, true, background, survey)),
    )
    assert history.shape == (15,) and len(errors) == 15
    assert history[-1] < history[0] / 4, history
    assert fwi.model_error(background, true, background, survey) == pytest.approx(1.0)
    assert errors[-1] < 0.6 and errors[-1] < errors[0], errors
    outside = np.asarray(survey.mask) == 0
    np.testing.assert_array_equal(np.asarray(velocity)[outside], background[outside])


def test_bad_input_is_refused(survey, models):
    background, _ = models
    with pytest.raises(ValueError, match="grid is"):
        fwi.forward(background[:-1], survey)
    with pytest.raises(ValueError, match="max_velocity"):
        fwi.forward(background * 3, survey)
    observed = jnp.zeros((len(survey.sources), len(survey.wavelet), len(survey.receivers)))
    with pytest.raises(ValueError, match="divide"):
        fwi.invert(background, observed, survey, iterations=1, coarsening=5)
    with pytest.raises(ValueError, match="geometry"):
        fwi.make_survey(N, geometry="circle")
    with pytest.raises(ValueError, match="too small"):
        fwi.make_survey(20)
