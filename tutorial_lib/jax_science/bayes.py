r"""Bayesian uncertainty for the ringdown fit: the Laplace approximation, NumPyro and BlackJAX.

`least_squares` fits $\theta = (A, \gamma, \omega, \varphi)$ of the ringdown
$x(t;\theta) = A e^{-\gamma t}\cos(\omega t + \varphi)$ to noisy data and gets error bars from the
curvature of the misfit. Here the same question is asked of the posterior
$p(\theta \mid y) \propto p(y \mid \theta)\, p(\theta)$ with a Gaussian likelihood of known noise
standard deviation $\sigma$, in three ways that should agree when the data are informative:

* `laplace_covariance`: the Gauss–Newton (Laplace) approximation, a Gaussian at the fit with
  covariance $\sigma^2 (J^\top J)^{-1}$, $J = \partial x(t_i;\theta)/\partial\theta_j$;
* `numpyro_nuts`: the model `ringdown_model` written in NumPyro and sampled with its No-U-Turn
  sampler (Hoffman & Gelman 2014);
* `blackjax_nuts`: the *same* log-density, taken from NumPyro in unconstrained space, sampled by
  BlackJAX's NUTS after Stan-style window adaptation of the step size and mass matrix.

The frequency makes the likelihood multimodal (a wrong $\omega$ that fits some of the cycles is a
local mode), so neither sampler is asked to find the right mode from a random start: both start
every chain near `theta_init`, typically the Gauss–Newton fit, and explore the mode around it.
"""

from typing import NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpyro
import numpyro.distributions as dist
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import init_to_value, initialize_model

from tutorial_lib.jax_science.least_squares import Model, ringdown

__all__ = [
    "PARAMETERS",
    "PosteriorSamples",
    "blackjax_nuts",
    "laplace_covariance",
    "numpyro_nuts",
    "ringdown_model",
]

PARAMETERS = ("A", "gamma", "omega", "phi")
"""The NumPyro site names of theta's entries, in theta's order."""

# Jitter of each chain's start around `theta_init`, in unconstrained coordinates (log A, log gamma,
# log omega, logit of the phase): about 1 %, small against the spacing of the frequency modes.
_START_JITTER = 0.01


class PosteriorSamples(NamedTuple):
    """Draws from the posterior with their convergence diagnostics.

    `samples[c, i]` is draw `i` of chain `c`, in theta's order `(A, gamma, omega, phi)`;
    `r_hat` (split Gelman–Rubin, near 1 when the chains agree) and `ess` (effective sample size
    over all chains) are per parameter; `divergences` counts divergent NUTS transitions.
    """

    samples: Float[Array, "chains draws 4"]
    r_hat: Float[Array, "4"]
    ess: Float[Array, "4"]
    divergences: Int[Array, ""]


def ringdown_model(
    t: Float[ArrayLike, " m"], y: Float[ArrayLike, " m"] | None = None, *, noise: object
) -> None:
    r"""NumPyro model of ringdown data `y` observed at times `t` with known noise sd `noise`.

    Weakly informative priors, on the scale of the book's example (A = 1.5, gamma = 0.3 /s,
    omega = 7.5 rad/s, 400 points over 8 s) and nearly flat over where such data put theta:

    * `A ~ HalfNormal(5)` and the phase `phi ~ Uniform(-pi, pi)`: a positive amplitude, so that
      `(A, phi)` and `(-A, phi + pi)`, the same curve, are not two modes;
    * `gamma ~ HalfNormal(2)` per second: a decay, not a growth;
    * `omega ~ HalfNormal(50)` rad/s: any frequency up to a few times 8 Hz.

    The likelihood is `y_i ~ Normal(ringdown(theta, t_i), noise)`; with `y=None` the model draws
    data from the prior predictive instead.
    """
    amplitude = numpyro.sample("A", dist.HalfNormal(5.0))
    rate = numpyro.sample("gamma", dist.HalfNormal(2.0))
    omega = numpyro.sample("omega", dist.HalfNormal(50.0))
    phase = numpyro.sample("phi", dist.Uniform(-jnp.pi, jnp.pi))
    theta = jnp.stack([amplitude, rate, omega, phase])
    t = jnp.asarray(t)
    with numpyro.plate("time", t.shape[0]):
        numpyro.sample("y", dist.Normal(ringdown(theta, t), noise), obs=y)


def laplace_covariance(
    model_fn: Model, theta_hat: ArrayLike, t: ArrayLike, noise: object
) -> Float[Array, "p p"]:
    r"""Gauss–Newton (Laplace) posterior covariance `noise**2 (J^T J)^{-1}` at the fit `theta_hat`.

    `J = jax.jacfwd(model_fn)(theta_hat, t)`, shape `(m, p)`. It is the inverse Hessian of the
    negative log-likelihood with the model linearised at the fit (the residual-curvature term
    dropped, small at a good fit) and flat priors: a Gaussian approximation to the posterior.
    """
    _check_noise(noise)
    theta_hat, t = jnp.asarray(theta_hat), jnp.asarray(t)
    if theta_hat.ndim != 1 or t.ndim != 1:
        raise ValueError(
            f"theta_hat and t must be 1-D, got shapes {theta_hat.shape} and {t.shape}."
        )
    jac = jax.jacfwd(model_fn)(theta_hat, t)
    return noise**2 * jnp.linalg.inv(jac.T @ jac)


def numpyro_nuts(
    key: PRNGKeyArray,
    t: ArrayLike,
    y: ArrayLike,
    *,
    noise: object,
    theta_init: ArrayLike,
    num_warmup: object = 500,
    num_samples: object = 500,
    num_chains: object = 4,
    chain_method: str = "vectorized",
) -> PosteriorSamples:
    """Sample the posterior of `ringdown_model` with NumPyro's NUTS (`numpyro.infer.MCMC`).

    Every chain starts near `theta_init` (jittered by about 1 %; the Gauss–Newton fit is a good
    choice), adapts its step size and diagonal mass matrix for `num_warmup` steps and then keeps
    `num_samples` draws. `chain_method` is `"vectorized"` (all chains in one program, what a
    single CPU or GPU wants) or `"sequential"`.
    """
    t, y, theta_init = _check_inputs(t, y, noise, theta_init, num_warmup, num_samples, num_chains)
    if chain_method not in ("vectorized", "sequential"):
        raise ValueError(
            f"chain_method must be 'vectorized' or 'sequential', got {chain_method!r}."
        )
    start_key, run_key = jr.split(key)
    _, _, _, z_start = _unconstrained_posterior(t, y, noise, theta_init, num_chains, start_key)
    kernel = NUTS(ringdown_model)
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method=chain_method,
        progress_bar=False,
    )
    mcmc.run(run_key, t, y, noise=noise, init_params=z_start, extra_fields=("diverging",))
    draws = mcmc.get_samples(group_by_chain=True)
    samples = jnp.stack([draws[name] for name in PARAMETERS], axis=-1)
    diverging = mcmc.get_extra_fields(group_by_chain=True)["diverging"]
    return _with_diagnostics(samples, diverging)


def blackjax_nuts(
    key: PRNGKeyArray,
    t: ArrayLike,
    y: ArrayLike,
    *,
    noise: object,
    theta_init: ArrayLike,
    num_warmup: object = 500,
    num_samples: object = 500,
    num_chains: object = 4,
) -> PosteriorSamples:
    """Sample the same posterior with BlackJAX's NUTS, its log-density taken from NumPyro.

    `numpyro.infer.util.initialize_model` turns `ringdown_model` into a potential energy (minus
    the log-density, Jacobians of the constraining transforms included) on unconstrained
    coordinates; `blackjax.window_adaptation` tunes NUTS's step size and diagonal mass matrix on
    it for `num_warmup` steps, `num_samples` draws follow, and NumPyro's `postprocess_fn` maps
    them back to `(A, gamma, omega, phi)`. The chains run under `jax.vmap`, starts as in
    `numpyro_nuts`.
    """
    t, y, theta_init = _check_inputs(t, y, noise, theta_init, num_warmup, num_samples, num_chains)
    start_key, run_key = jr.split(key)
    potential_fn, postprocess_fn, _, z_start = _unconstrained_posterior(
        t, y, noise, theta_init, num_chains, start_key
    )

    def logdensity(z):
        return -potential_fn(z)

    def one_chain(key, z0):
        warmup_key, sample_key = jr.split(key)
        warmup = blackjax.window_adaptation(blackjax.nuts, logdensity)
        (state, parameters), _ = warmup.run(warmup_key, z0, num_steps=num_warmup)
        step = blackjax.nuts(logdensity, **parameters).step

        def body(state, key):
            state, info = step(key, state)
            return state, (state.position, info.is_divergent)

        _, (positions, divergent) = jax.lax.scan(body, state, jr.split(sample_key, num_samples))
        return jax.vmap(postprocess_fn)(positions), divergent

    draws, diverging = jax.jit(jax.vmap(one_chain))(jr.split(run_key, num_chains), z_start)
    samples = jnp.stack([draws[name] for name in PARAMETERS], axis=-1)
    return _with_diagnostics(samples, diverging)


# --- helpers -----------------------------------------------------------------------------------


def _unconstrained_posterior(t, y, noise, theta_init, num_chains, key):
    """NumPyro's potential and postprocessing functions, and jittered unconstrained starts."""
    values = {name: theta_init[i] for i, name in enumerate(PARAMETERS)}
    info = initialize_model(
        key,
        ringdown_model,
        init_strategy=init_to_value(values=values),
        model_args=(t, y),
        model_kwargs={"noise": noise},
    )
    z0 = info.param_info.z
    keys = dict(zip(PARAMETERS, jr.split(key, len(PARAMETERS)), strict=True))
    z_start = {
        name: z0[name] + _START_JITTER * jr.normal(keys[name], (num_chains, *jnp.shape(z0[name])))
        for name in PARAMETERS
    }
    return info.potential_fn, info.postprocess_fn, z0, z_start


def _with_diagnostics(
    samples: Float[Array, "chains draws 4"], diverging: Bool[Array, "chains draws"]
) -> PosteriorSamples:
    draws = np.asarray(samples)
    return PosteriorSamples(
        samples=samples,
        r_hat=jnp.asarray(split_gelman_rubin(draws), dtype=samples.dtype),
        ess=jnp.asarray(effective_sample_size(draws), dtype=samples.dtype),
        divergences=jnp.sum(diverging).astype(jnp.int32),
    )


def _check_noise(noise) -> None:
    if isinstance(noise, bool) or not np.ndim(noise) == 0 or not float(noise) > 0:
        raise ValueError(f"noise must be a positive standard deviation, got {noise!r}.")


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


def _check_inputs(t, y, noise, theta_init, num_warmup, num_samples, num_chains):
    _check_noise(noise)
    for name, value in [
        ("num_warmup", num_warmup),
        ("num_samples", num_samples),
        ("num_chains", num_chains),
    ]:
        _check_count(name, value)
    t, y, theta_init = jnp.asarray(t), jnp.asarray(y), jnp.asarray(theta_init)
    if t.ndim != 1 or t.shape != y.shape:
        raise ValueError(
            f"t and y must be 1-D arrays of the same length (one observation per time), "
            f"got shapes {t.shape} and {y.shape}."
        )
    if theta_init.shape != (4,):
        raise ValueError(
            f"theta_init must be (A, gamma, omega, phi), shape (4,), got {theta_init.shape}."
        )
    a, rate, omega, phase = (float(v) for v in theta_init)
    if not (a > 0 and rate > 0 and omega > 0 and -np.pi < phase < np.pi):
        raise ValueError(
            f"theta_init must lie inside the prior's support (A, gamma, omega > 0 and "
            f"-pi < phi < pi), got {theta_init.tolist()}."
        )
    return t, y, theta_init
