"""Bayesian ringdown posterior: NumPyro's model, NUTS in NumPyro and BlackJAX, and Laplace."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_likelihood

from tutorial_lib.jax_science import bayes
from tutorial_lib.jax_science import least_squares as ls

THETA = jnp.array([1.5, 0.3, 2 * np.pi * 1.2, 0.4])  # A, gamma, omega, phi: the page's setup
T = jnp.linspace(0.0, 8.0, 400)
NOISE = 0.1
RUN = dict(noise=NOISE, num_warmup=300, num_samples=300, num_chains=2)


@pytest.fixture(scope="module")
def data():
    y = ls.simulate_ringdown(jr.key(0), THETA, T, NOISE)
    fit, _ = ls.gauss_newton(ls.ringdown, jnp.array([1.0, 0.5, 7.3, 0.0]), T, y, n_iter=20)
    return y, fit


@pytest.fixture(scope="module")
def numpyro_run(data):
    y, fit = data
    return bayes.numpyro_nuts(jr.key(1), T, y, theta_init=fit, **RUN)


@pytest.fixture(scope="module")
def blackjax_run(data):
    y, fit = data
    return bayes.blackjax_nuts(jr.key(2), T, y, theta_init=fit, **RUN)


def test_log_likelihood_is_the_scaled_misfit(data):
    y, _ = data
    thetas = THETA * jnp.array([[1.0, 1.0, 1.0, 1.0], [0.8, 1.3, 1.01, 0.5], [1.2, 0.7, 0.99, 2.0]])
    params = {name: thetas[:, i] for i, name in enumerate(bayes.PARAMETERS)}
    loglik = log_likelihood(bayes.ringdown_model, params, T, y, noise=NOISE)["y"].sum(-1)
    m = T.shape[0]
    scaled = np.array([-m * float(ls.misfit(ls.ringdown, th, T, y)) / NOISE**2 for th in thetas])
    offset = np.asarray(loglik) - scaled
    # the same function of theta up to the Gaussian normaliser -m/2 log(2 pi sigma^2)
    np.testing.assert_allclose(offset, -0.5 * m * np.log(2 * np.pi * NOISE**2), rtol=1e-4)
    assert np.ptp(offset) < 1e-3 * np.ptp(scaled)


def test_prior_predictive_draws_data_of_the_right_shape():
    trace = handlers.trace(handlers.seed(bayes.ringdown_model, 0)).get_trace(T, noise=NOISE)
    assert trace["y"]["value"].shape == T.shape
    assert trace["A"]["value"] > 0 and trace["gamma"]["value"] > 0


def test_numpyro_nuts_recovers_the_truth(numpyro_run):
    run = numpyro_run
    assert run.samples.shape == (2, 300, 4)
    flat = np.asarray(run.samples).reshape(-1, 4)
    mean, sd = flat.mean(0), flat.std(0)
    assert np.all(np.abs(mean - np.asarray(THETA)) < 4 * sd), (mean, sd)
    assert np.all(np.asarray(run.r_hat) < 1.05), run.r_hat
    assert np.all(np.asarray(run.ess) > 50), run.ess
    assert int(run.divergences) == 0


def test_blackjax_agrees_with_numpyro_and_laplace(data, numpyro_run, blackjax_run):
    _, fit = data
    assert blackjax_run.samples.shape == numpyro_run.samples.shape
    assert np.all(np.asarray(blackjax_run.r_hat) < 1.05), blackjax_run.r_hat
    assert int(blackjax_run.divergences) == 0
    a = np.asarray(numpyro_run.samples).reshape(-1, 4)
    b = np.asarray(blackjax_run.samples).reshape(-1, 4)
    # Monte-Carlo standard error of the difference of the two posterior means
    mcse = np.sqrt(a.var(0) / np.asarray(numpyro_run.ess) + b.var(0) / np.asarray(blackjax_run.ess))
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * mcse), (a.mean(0), b.mean(0), mcse)
    laplace_sd = np.sqrt(np.diag(np.asarray(bayes.laplace_covariance(ls.ringdown, fit, T, NOISE))))
    for draws in (a, b):
        np.testing.assert_allclose(draws.std(0), laplace_sd, rtol=0.25)


def test_laplace_covariance_is_symmetric_positive_definite(data):
    _, fit = data
    cov = np.asarray(bayes.laplace_covariance(ls.ringdown, fit, T, NOISE))
    assert cov.shape == (4, 4)
    np.testing.assert_allclose(cov, cov.T, rtol=1e-4, atol=1e-10)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


@pytest.mark.parametrize("sampler", [bayes.numpyro_nuts, bayes.blackjax_nuts])
def test_bad_inputs_raise(sampler, data):
    y, fit = data
    ok = dict(noise=NOISE, theta_init=fit, num_warmup=10, num_samples=10, num_chains=1)
    with pytest.raises(ValueError, match="same length"):
        sampler(jr.key(0), T, y[:-1], **ok)
    with pytest.raises(ValueError, match="noise must be a positive"):
        sampler(jr.key(0), T, y, **{**ok, "noise": 0.0})
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        sampler(jr.key(0), T, y, **{**ok, "num_samples": 0})
    with pytest.raises(ValueError, match="num_warmup must be a positive int"):
        sampler(jr.key(0), T, y, **{**ok, "num_warmup": -5})
    with pytest.raises(ValueError, match="num_chains must be a positive int"):
        sampler(jr.key(0), T, y, **{**ok, "num_chains": 2.0})
    with pytest.raises(ValueError, match="shape \\(4,\\)"):
        sampler(jr.key(0), T, y, **{**ok, "theta_init": fit[:3]})
    with pytest.raises(ValueError, match="prior's support"):
        sampler(jr.key(0), T, y, **{**ok, "theta_init": fit * jnp.array([-1.0, 1, 1, 1])})
    with pytest.raises(ValueError, match="noise must be a positive"):
        bayes.laplace_covariance(ls.ringdown, fit, T, -1.0)
