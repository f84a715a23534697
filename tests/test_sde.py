"""Continuous-time diffusion: VP/VE SDEs, exact mixture scores, samplers and likelihoods."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.data.toy import example_mixture
from tutorial_lib.diffusion import LinearSchedule, nearest_mode_fractions, sde

VP = sde.VPSDE(beta_min=0.1, beta_max=20.0)
VE = sde.VESDE(sigma_min=0.01, sigma_max=10.0)


def mixture_moments(mixture):
    w, mu, cov = (
        np.asarray(a, np.float64) for a in (mixture.weights, mixture.means, mixture.covariances)
    )
    mean = w @ mu
    second = np.einsum("k,kij->ij", w, cov + mu[:, :, None] * mu[:, None, :])
    return mean, second - np.outer(mean, mean)


# --- the SDEs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("s", [VP, VE, sde.VPSDE(beta_min=1.0, beta_max=1.0)], ids=str)
def test_marginal_coefficients_solve_the_moment_equations(s):
    # For dx = a(t) x dt + g(t) dW: alpha' = a alpha and (sigma^2)' = 2 a sigma^2 + g^2, with
    # alpha(0) = 1 and sigma(0) = 0. The drift coefficient a(t) is f(1, t).
    ts = jnp.linspace(0.02, 1.0, 50)
    a = jax.vmap(lambda t: s.drift(jnp.ones(1), t)[0])(ts)
    alpha = s.mean_coeff(ts)
    var = s.marginal_std(ts) ** 2
    d_alpha = jax.vmap(jax.grad(s.mean_coeff))(ts)
    d_var = jax.vmap(jax.grad(lambda t: s.marginal_std(t) ** 2))(ts)
    g2 = jax.vmap(s.diffusion)(ts) ** 2
    np.testing.assert_allclose(d_alpha, a * alpha, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(d_var, 2 * a * var + g2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s.mean_coeff(0.0), 1.0)
    np.testing.assert_allclose(s.marginal_std(0.0), 0.0, atol=1e-7)


def test_closed_forms_and_priors():
    # VP: alpha(1) = exp(-(20 - 0.1)/4 - 0.1/2), variance preserved for unit-variance data.
    np.testing.assert_allclose(VP.mean_coeff(1.0), np.exp(-19.9 / 4 - 0.05), rtol=1e-5)
    t = jnp.linspace(0, 1, 11)
    np.testing.assert_allclose(VP.mean_coeff(t) ** 2 + VP.marginal_std(t) ** 2, 1.0, rtol=1e-6)
    # VE: sigma(t)^2 = s(t)^2 - sigma_min^2; the prior is N(0, sigma(1)^2 I).
    np.testing.assert_allclose(
        VE.marginal_std(t) ** 2, VE.noise_level(t) ** 2 - 0.01**2, rtol=1e-4, atol=1e-8
    )
    np.testing.assert_allclose(VE.prior_std(), np.sqrt(100.0 - 1e-4), rtol=1e-6)
    x = jnp.array([0.3, -1.2])
    for s in [VP, VE]:
        std = float(s.prior_std())
        want = -0.5 * float(jnp.sum(x**2)) / std**2 - 2 * np.log(std) - np.log(2 * np.pi)
        np.testing.assert_allclose(float(s.prior_log_prob(x)), want, rtol=1e-6)
        samples = s.prior_sample(jr.key(0), (50_000, 2))
        np.testing.assert_allclose(samples.std(axis=0), std, rtol=0.02)


def test_linear_schedule_is_the_vp_sde():
    # One implementation of beta(t): DDPM's linear schedule is VPSDE seen through abar = alpha^2.
    for schedule in [LinearSchedule(), LinearSchedule(beta_min=0.5, beta_max=5.0)]:
        vp = schedule.sde
        assert isinstance(vp, sde.VPSDE)
        assert (vp.beta_min, vp.beta_max) == (schedule.beta_min, schedule.beta_max)
        t = jnp.linspace(0.0, 1.0, 101)
        np.testing.assert_array_equal(schedule.alpha_bar(t), jnp.exp(2 * vp.log_mean_coeff(t)))
        np.testing.assert_allclose(schedule.alpha_bar(t), vp.mean_coeff(t) ** 2, rtol=1e-6)
    assert (LinearSchedule().beta_min, LinearSchedule().beta_max) == (VP.beta_min, VP.beta_max)
    # Schedules passed through `jax.jit` as pytrees (their betas traced) still work.
    traced = jax.jit(lambda s, t: s.alpha_bar(t))(LinearSchedule(), 0.3)
    np.testing.assert_allclose(traced, LinearSchedule().alpha_bar(0.3), rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: sde.VPSDE(beta_min=1.0, beta_max=0.5), "need beta_max >= beta_min"),
        (lambda: sde.VPSDE(beta_min=-1.0), "beta_min must be a positive number"),
        (lambda: sde.VPSDE(T=0.0), "T must be a positive number"),
        (lambda: sde.VESDE(sigma_min=1.0, sigma_max=1.0), "need sigma_max > sigma_min"),
        (lambda: sde.VESDE(sigma_min=0.0), "sigma_min must be a positive number"),
        (lambda: sde.VESDE(T=float("nan")), "T must be a positive number"),
    ],
)
def test_sdes_reject_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("s", [VP, VE], ids=["VP", "VE"])
def test_simulated_forward_marginals_match_the_closed_form(s):
    x0 = jnp.array([1.5, -1.0])
    ts = jnp.linspace(0.0, 1.0, 6)
    n = 2_000

    @eqx.filter_jit
    def simulate(keys):
        return jax.vmap(lambda k: sde.simulate_forward(s, x0, k, ts, n_steps=200))(keys)

    paths = simulate(jr.split(jr.key(0), n))
    assert paths.shape == (n, 6, 2)
    np.testing.assert_array_equal(paths[:, 0], jnp.broadcast_to(x0, (n, 2)))
    for i in range(1, 6):
        mean, std = s.marginal(x0, ts[i])
        x = np.asarray(paths[:, i], np.float64)
        # Sample mean within 4 standard errors; sample std within 4 of its standard errors
        # (sd / sqrt(2n)) plus 2 % for the time discretisation.
        se_mean = float(std) / np.sqrt(n)
        np.testing.assert_allclose(x.mean(axis=0), mean, atol=4 * se_mean + 0.01 * float(std))
        np.testing.assert_allclose(
            x.std(axis=0), float(std), rtol=4 / np.sqrt(2 * n) + 0.02, atol=1e-3
        )
        # Independent coordinates.
        assert abs(np.corrcoef(x.T)[0, 1]) < 4 / np.sqrt(n)


# --- exact scores of Gaussian mixtures ---------------------------------------------------------


@pytest.mark.parametrize("s", [VP, VE], ids=["VP", "VE"])
def test_marginal_mixture_and_mixture_score_are_exact(s):
    mixture = example_mixture()
    exact = sde.MixtureScore(s, mixture)
    points = 3 * jr.normal(jr.key(0), (10, 2))

    @jax.jit
    def evaluate(t):
        p_t = sde.marginal_mixture(s, mixture, t)
        return (
            p_t,
            jax.vmap(jax.grad(p_t.log_prob))(points),  # autodiff of the log-density
            jax.vmap(p_t.score)(points),
            jax.vmap(p_t.log_prob)(points),
            jax.vmap(exact, in_axes=(0, None))(points, t),
            jax.vmap(exact.log_prob, in_axes=(0, None))(points, t),
        )

    for t in [0.0, 0.05, 0.3, 1.0]:
        p_t, autodiff, score, log_prob, fast_score, fast_log_prob = evaluate(t)
        alpha, std = float(s.mean_coeff(t)), float(s.marginal_std(t))
        np.testing.assert_allclose(p_t.means, alpha * mixture.means, rtol=1e-6)
        np.testing.assert_allclose(
            p_t.covariances, alpha**2 * mixture.covariances + std**2 * jnp.eye(2), rtol=1e-5
        )
        np.testing.assert_allclose(score, autodiff, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(fast_score, autodiff, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(fast_log_prob, log_prob, rtol=1e-5)
    # At t = 0 the marginal is the data distribution itself.
    np.testing.assert_allclose(
        exact.log_prob(points[0], 0.0), mixture.log_prob(points[0]), rtol=1e-5
    )


# --- training loss -----------------------------------------------------------------------------


def test_dsm_loss_is_minimised_by_the_exact_score():
    mixture = example_mixture()
    exact = sde.MixtureScore(VP, mixture)
    x0 = mixture.sample(jr.key(0), 100_000)
    cs = jnp.linspace(0.8, 1.2, 41)

    @jax.jit
    def losses(cs):
        return jax.vmap(
            lambda c: sde.dsm_loss(lambda x, t: c * exact(x, t), VP, x0, jr.key(1), t_min=0.05)
        )(cs)

    assert abs(float(cs[jnp.argmin(losses(cs))]) - 1.0) < 0.025


def test_time_score_net_and_loss_contract():
    net = sde.TimeScoreNet(VP, dim=2, width=16, depth=2, key=jr.key(0))
    out = net(jnp.ones(2), 0.3)
    assert out.shape == (2,)
    # The output is scaled by 1 / sigma(t).
    raw = net.mlp(
        jnp.concatenate(
            [jnp.ones(2), jnp.sin(net.frequencies * 0.3), jnp.cos(net.frequencies * 0.3)]
        )
    )
    np.testing.assert_allclose(out, raw / VP.marginal_std(0.3), rtol=1e-5)
    assert np.isfinite(float(eqx.filter_jit(sde.dsm_loss)(net, VP, jnp.ones((8, 2)), jr.key(1))))
    with pytest.raises(ValueError, match=r"x0 must be a batch of shape \(n, d\)"):
        sde.dsm_loss(net, VP, jnp.ones(2), jr.key(1))
    with pytest.raises(ValueError, match=r"t_min must lie in \(0, T=1.0\)"):
        sde.dsm_loss(net, VP, jnp.ones((8, 2)), jr.key(1), t_min=0.0)


# --- sampling ----------------------------------------------------------------------------------


def _check_samples_follow(samples, mixture, n):
    mean, cov = mixture_moments(mixture)
    x = np.asarray(samples, np.float64)
    std = np.sqrt(np.diag(cov))
    # Within 4 standard errors. That of a covariance entry is ~ std_i std_j sqrt(2/n) for
    # Gaussian data; sqrt(3/n) allows for the mixture's heavier tails.
    assert np.all(np.abs(x.mean(axis=0) - mean) < 4 * std / np.sqrt(n)), (x.mean(axis=0), mean)
    cov_error = np.abs(np.cov(x.T) - cov)
    assert np.all(cov_error < 4 * np.outer(std, std) * np.sqrt(3 / n)), (np.cov(x.T), cov)
    fractions = nearest_mode_fractions(x, mixture.means)
    # Nearest-mean fractions of the exact mixture, from many exact samples.
    reference = nearest_mode_fractions(mixture.sample(jr.key(99), 200_000), mixture.means)
    np.testing.assert_allclose(fractions, reference, atol=4 * 0.5 / np.sqrt(n))


@pytest.mark.parametrize("s", [VP, VE], ids=["VP", "VE"])
def test_probability_flow_transports_the_prior_to_the_mixture(s):
    mixture = example_mixture()
    exact = sde.MixtureScore(s, mixture)
    n = 2_000
    x_T = s.prior_sample(jr.key(0), (n, 2))
    ts = jnp.array([s.T, 0.5 * s.T, 1e-3])  # decreasing: the ODE runs from T to t_min
    paths, steps = jax.jit(
        jax.vmap(lambda x: sde.probability_flow_sample(s, exact, x, ts=ts, rtol=1e-4, atol=1e-4))
    )(x_T)
    assert paths.shape == (n, 3, 2)
    np.testing.assert_allclose(paths[:, 0], x_T, atol=1e-6)
    assert 5 < float(steps.mean()) < 500
    _check_samples_follow(paths[:, -1], mixture, n)


def test_reverse_sde_transports_the_prior_to_the_mixture():
    mixture = example_mixture()
    exact = sde.MixtureScore(VP, mixture)
    n = 2_000
    x_T = VP.prior_sample(jr.key(0), (n, 2))
    keys = jr.split(jr.key(1), n)

    def sample_one(x, key):
        return sde.reverse_sde_sample(VP, exact, x, key, n_steps=200)

    run = jax.jit(jax.vmap(sample_one))
    samples = run(x_T, keys)
    assert samples.shape == (n, 2)
    _check_samples_follow(samples, mixture, n)
    # The same key gives the same sample; another key another one.
    again = run(x_T, jnp.concatenate([keys[1:2], keys[1:]]))
    np.testing.assert_array_equal(again[1:], samples[1:])
    assert float(jnp.linalg.norm(again[0] - samples[0])) > 1e-3


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f, x: sde.reverse_sde_sample(VP, f, x, jr.key(0), n_steps=0), "n_steps must be"),
        (lambda f, x: sde.reverse_sde_sample(VP, f, x, jr.key(0), t_min=1.0), "t_min must lie"),
        (lambda f, x: sde.probability_flow_sample(VP, f, x, t_min=-0.1), "t_min must lie"),
        (lambda f, x: sde.log_likelihood(VP, f, x, t_min=2.0), "t_min must lie"),
        (lambda f, x: sde.log_likelihood(VP, f, x, probe=jnp.ones(3)), "probe must have the shape"),
    ],
)
def test_samplers_reject_bad_arguments(call, match):
    exact = sde.MixtureScore(VP, example_mixture())
    with pytest.raises(ValueError, match=match):
        call(exact, jnp.zeros(2))


# --- divergence and likelihood -----------------------------------------------------------------


def test_divergence_estimators():
    A = jnp.array([[1.0, 2.0, 0.0], [0.5, -3.0, 1.0], [0.0, 4.0, 0.5]])

    def v(x):
        return A @ x + jnp.sin(x)

    x = jnp.array([0.3, -0.2, 1.0])
    want = float(jnp.trace(A) + jnp.sum(jnp.cos(x)))
    np.testing.assert_allclose(float(sde.divergence_exact(v, x)), want, rtol=1e-6)
    for kind in ["rademacher", "gaussian"]:
        probes = sde.probe_vectors(jr.key(0), (200_000, 3), kind)
        assert probes.shape == (200_000, 3)
        estimates = jax.vmap(lambda p: sde.divergence_hutchinson(v, x, p))(probes)
        se = float(estimates.std()) / np.sqrt(200_000)
        assert abs(float(estimates.mean()) - want) < 4 * se
    rademacher = sde.probe_vectors(jr.key(0), (1_000, 3))
    np.testing.assert_array_equal(jnp.abs(rademacher), 1.0)
    with pytest.raises(ValueError, match="kind must be 'rademacher' or 'gaussian'"):
        sde.probe_vectors(jr.key(0), (3,), "uniform")


@pytest.mark.parametrize("s", [VP, VE], ids=["VP", "VE"])
def test_log_likelihood_of_the_exact_score_is_the_mixture_log_density(s):
    mixture = example_mixture()
    exact = sde.MixtureScore(s, mixture)
    x = mixture.sample(jr.key(0), 30)
    t_min = 1e-3
    truth = jax.vmap(exact.log_prob, in_axes=(0, None))(x, t_min)

    @jax.jit
    def solve(x):
        # With the exact p_T as the prior only the solver's error is left.
        return jax.vmap(
            lambda y: sde.log_likelihood(
                s, exact, y, t_min=t_min, prior_log_prob=lambda z: exact.log_prob(z, s.T)
            )
        )(x)

    result = solve(x)
    np.testing.assert_allclose(result.log_prob, truth, atol=2e-3)
    assert np.all(result.num_steps > 0)
    # The Gaussian prior of the SDE differs from p_T by little for VP, which forgets the data.
    if s is VP:
        with_prior = jax.vmap(s.prior_log_prob)(result.x_T) + result.divergence_integral
        np.testing.assert_allclose(with_prior, truth, atol=0.02)
        # The latent codes decode back to the data through the probability-flow ODE.
        decoded, _ = jax.jit(
            jax.vmap(lambda z: sde.probability_flow_sample(s, exact, z, t_min=t_min))
        )(result.x_T)
        np.testing.assert_allclose(decoded, x, atol=1e-2)


def test_hutchinson_log_likelihood_is_unbiased():
    mixture = example_mixture()
    exact = sde.MixtureScore(VP, mixture)
    x = mixture.sample(jr.key(0), 64)
    probes = sde.probe_vectors(jr.key(1), x.shape)

    @jax.jit
    def solve(x, probes):
        exact_div = jax.vmap(lambda y: sde.log_likelihood(VP, exact, y))(x)
        estimated = jax.vmap(lambda y, p: sde.log_likelihood(VP, exact, y, probe=p))(x, probes)
        return exact_div, estimated

    exact_div, estimated = solve(x, probes)
    difference = np.asarray(estimated.log_prob - exact_div.log_prob, np.float64)
    assert difference.std() > 0.01  # a single probe is noisy ...
    se = difference.std() / np.sqrt(len(difference))
    assert abs(difference.mean()) < 4 * se  # ... but unbiased
    # The probe changes only the divergence, not the path of the ODE.
    np.testing.assert_allclose(estimated.x_T, exact_div.x_T, atol=1e-3)
