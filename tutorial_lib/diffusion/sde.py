r"""Score-based generative modelling in continuous time (Song et al. 2021), with Diffrax.

A forward SDE $\mathrm dx = f(x, t)\,\mathrm dt + g(t)\,\mathrm dW$ turns data into
noise over $t \in [0, T]$. With an affine drift its transition law is Gaussian,
$x_t \mid x_0 \sim \mathcal N(\alpha(t) x_0, \sigma(t)^2 I)$, so denoising score matching
applies at every time. Given the score $\nabla_x \log p_t$, two processes run from noise
back to data with the same marginals $p_t$:

- the reverse-time SDE $\mathrm dx = [f - g^2 \nabla_x \log p_t]\,\mathrm dt +
  g\,\mathrm d\bar W$ (Anderson 1982), `reverse_sde_sample`;
- the probability-flow ODE $\dot x = f - \tfrac12 g^2 \nabla_x \log p_t$,
  `probability_flow_sample`, which also gives exact log-likelihoods by the instantaneous
  change of variables, `log_likelihood`.

Contents:

- `AbstractSDE` and its two instances `VPSDE` (variance preserving) and
  `VESDE` (variance exploding): drift, diffusion, the marginal coefficients
  $\alpha(t), \sigma(t)$, the prior at $T$.
- `simulate_forward`: one Euler–Maruyama path of the forward SDE (Diffrax,
  `VirtualBrownianTree`).
- `marginal_mixture` and `MixtureScore`: for Gaussian-mixture data the noised
  marginal $p_t$ is again a Gaussian mixture, so its score is known exactly.
- `TimeScoreNet` and `dsm_loss`: a time-conditioned score network and its
  denoising score matching loss (train it with
  `tutorial_lib.diffusion.score_matching.train`).

Every function works on ONE point (`(d,)`) and is meant to be `jax.vmap`-ed; scores are
called as `score(x, t)`.
"""

import abc
from collections.abc import Callable
from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from tutorial_lib.data.toy import GaussianMixture

__all__ = [
    "VESDE",
    "VPSDE",
    "AbstractSDE",
    "Likelihood",
    "MixtureScore",
    "Scalar",
    "Score",
    "TimeScoreNet",
    "divergence_exact",
    "divergence_hutchinson",
    "dsm_loss",
    "dsm_loss_single",
    "log_likelihood",
    "marginal_mixture",
    "probability_flow_sample",
    "probe_vectors",
    "reverse_sde_sample",
    "simulate_forward",
]

Scalar = Float[ArrayLike, ""]
Score = Callable[[Float[Array, " d"], Scalar], Float[Array, " d"]]


# --- the SDEs ----------------------------------------------------------------------------------


class AbstractSDE(eqx.Module):
    """A forward SDE `dx = f(x, t) dt + g(t) dW` on `[0, T]` with affine drift, so that
    `x_t | x_0 ~ N(alpha(t) x_0, sigma(t)^2 I)`.

    Subclasses define `drift`, `diffusion`, `mean_coeff` (`alpha`),
    `marginal_std` (`sigma`) and `prior_std`; the rest follows from them.
    """

    T: eqx.AbstractVar[float]

    @abc.abstractmethod
    def drift(self, x: Float[Array, " d"], t: Scalar) -> Float[Array, " d"]:
        """The drift `f(x, t)`."""

    @abc.abstractmethod
    def diffusion(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """The (scalar) diffusion coefficient `g(t)` (elementwise for an array of times)."""

    @abc.abstractmethod
    def mean_coeff(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """`alpha(t)`: `E[x_t | x_0] = alpha(t) x_0` (elementwise for an array of times)."""

    @abc.abstractmethod
    def marginal_std(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """`sigma(t)`: the standard deviation of `x_t | x_0` in each coordinate (elementwise
        for an array of times)."""

    @abc.abstractmethod
    def prior_std(self) -> Float[ArrayLike, ""]:
        """The standard deviation of the Gaussian prior `N(0, prior_std^2 I)` used at `T`."""

    def marginal(
        self, x0: Float[Array, " d"], t: Scalar
    ) -> tuple[Float[Array, " d"], Float[Array, ""]]:
        """Mean and standard deviation of `x_t` given `x_0`."""
        return self.mean_coeff(t) * x0, self.marginal_std(t)

    def perturb(
        self, x0: Float[Array, " d"], t: Scalar, z: Float[Array, " d"]
    ) -> Float[Array, " d"]:
        """A draw of `x_t | x_0` from the standard normal `z`: `alpha x_0 + sigma z`."""
        return self.mean_coeff(t) * x0 + self.marginal_std(t) * z

    def prior_sample(self, key: PRNGKeyArray, shape: tuple[int, ...]) -> Float[Array, "..."]:
        """Samples of the prior `N(0, prior_std^2 I)`, of the given shape (e.g. `(n, d)`)."""
        return self.prior_std() * jr.normal(key, shape)

    def prior_log_prob(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        """Log-density of the prior at ONE point."""
        s = self.prior_std()
        d = x.shape[-1]
        return -0.5 * jnp.sum(x**2) / s**2 - d * jnp.log(s) - 0.5 * d * jnp.log(2 * jnp.pi)


def _is_traced(*values) -> bool:
    """Whether any value is a JAX tracer: parameters built inside `jit` cannot be checked."""
    return any(isinstance(v, jax.core.Tracer) for v in values)


def _check_positive(name, value):
    if _is_traced(value):
        return
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")


class VPSDE(AbstractSDE):
    """The variance-preserving SDE `dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW` with the linear
    schedule `beta(t) = beta_min + t (beta_max - beta_min)` (the continuous-time DDPM).

    `alpha(t) = exp(-B(t) / 2)` with `B(t) = int_0^t beta = t beta_min + t^2 (beta_max -
    beta_min) / 2`, `sigma(t)^2 = 1 - alpha(t)^2`; the prior is `N(0, I)`. DDPM's
    `abar(t)` is `alpha(t)^2 = exp(-B(t))`:
    `tutorial_lib.diffusion.schedule.LinearSchedule` is this SDE seen as a noise schedule.
    """

    beta_min: float | Float[Array, ""] = 0.1  # a traced array inside `jit`
    beta_max: float | Float[Array, ""] = 20.0
    T: float = 1.0

    def __check_init__(self):
        _check_positive("beta_min", self.beta_min)
        _check_positive("T", self.T)
        if not _is_traced(self.beta_min, self.beta_max) and not self.beta_max >= self.beta_min:
            raise ValueError(
                f"need beta_max >= beta_min, got beta_min={self.beta_min}, "
                f"beta_max={self.beta_max}."
            )

    def beta(self, t: Float[ArrayLike, "*t"]) -> Float[ArrayLike, "*t"]:
        """`beta(t)`, elementwise (a Python float for a Python float `t`)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def drift(self, x, t):
        return -0.5 * self.beta(t) * x

    def diffusion(self, t):
        return jnp.sqrt(self.beta(t))

    def log_mean_coeff(self, t: Float[ArrayLike, "*t"]) -> Float[ArrayLike, "*t"]:
        """`log alpha(t) = -B(t) / 2`, with `B(t) = int_0^t beta(s) ds`, elementwise (a Python
        float for a Python float `t`)."""
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def mean_coeff(self, t):
        return jnp.exp(self.log_mean_coeff(t))

    def marginal_std(self, t):
        return jnp.sqrt(-jnp.expm1(2 * self.log_mean_coeff(t)))  # accurate for small t

    def prior_std(self):
        return 1.0


class VESDE(AbstractSDE):
    """The variance-exploding SDE `dx = g(t) dW` whose noise level grows geometrically,
    `s(t) = sigma_min (sigma_max / sigma_min)^t`, `g(t) = s(t) sqrt(2 log(sigma_max/sigma_min))`
    (the continuous-time NCSN).

    `alpha(t) = 1` and `sigma(t)^2 = s(t)^2 - sigma_min^2` (exact for `x(0) = x_0`); the
    prior is `N(0, sigma(T)^2 I)`, which ignores the data's own spread and so needs
    `sigma_max` much larger than the data.
    """

    sigma_min: float | Float[Array, ""] = 0.01  # a traced array inside `jit`
    sigma_max: float | Float[Array, ""] = 10.0
    T: float = 1.0

    def __check_init__(self):
        _check_positive("sigma_min", self.sigma_min)
        _check_positive("T", self.T)
        if not _is_traced(self.sigma_min, self.sigma_max) and not self.sigma_max > self.sigma_min:
            raise ValueError(
                f"need sigma_max > sigma_min, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}."
            )

    def _log_ratio(self):
        return jnp.log(self.sigma_max / self.sigma_min)

    def noise_level(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """`s(t) = sigma_min (sigma_max / sigma_min)^t`, elementwise."""
        return self.sigma_min * jnp.exp(t * self._log_ratio())

    def drift(self, x, t):
        return jnp.zeros_like(x)

    def diffusion(self, t):
        return self.noise_level(t) * jnp.sqrt(2 * self._log_ratio())

    def mean_coeff(self, t):
        return jnp.ones(np.shape(t))

    def marginal_std(self, t):
        return self.sigma_min * jnp.sqrt(jnp.expm1(2 * t * self._log_ratio()))

    def prior_std(self):
        return self.marginal_std(self.T)


# --- forward simulation ------------------------------------------------------------------------


def _brownian(t0, t1, dt, shape, key):
    return diffrax.VirtualBrownianTree(t0, t1, tol=dt / 4, shape=shape, key=key)


def simulate_forward(
    sde: AbstractSDE,
    x0: Float[Array, " d"],
    key: PRNGKeyArray,
    ts: Float[ArrayLike, " times"],
    *,
    n_steps: int = 1000,
) -> Float[Array, "times d"]:
    """ONE path of the forward SDE from `x0` at `t = ts[0]`, saved at the times `ts`.

    Euler–Maruyama (`diffrax.Euler` on an ODE term plus a control term) with `n_steps`
    equal steps over `[ts[0], ts[-1]]`, driven by a `diffrax.VirtualBrownianTree` built from
    `key`. `jax.vmap` it over keys (and starting points) for many paths.
    """
    ts = jnp.asarray(ts)
    t0, t1 = ts[0], ts[-1]
    dt = (t1 - t0) / n_steps
    drift = diffrax.ODETerm(lambda t, y, args: sde.drift(y, t))
    noise = diffrax.ControlTerm(
        lambda t, y, args: lx.DiagonalLinearOperator(sde.diffusion(t) * jnp.ones_like(y)),
        _brownian(t0, t1, dt, x0.shape, key),
    )
    sol = diffrax.diffeqsolve(
        diffrax.MultiTerm(drift, noise),
        diffrax.Euler(),
        t0,
        t1,
        dt,
        x0,
        saveat=diffrax.SaveAt(ts=ts),
        max_steps=n_steps + 1,
    )
    return sol.ys


# --- exact scores for Gaussian-mixture data ----------------------------------------------------


def marginal_mixture(sde: AbstractSDE, mixture: GaussianMixture, t: Scalar) -> GaussianMixture:
    """The law `p_t` of `x_t` when `x_0` follows `mixture`: again a Gaussian mixture,
    with means `alpha(t) mu_k` and covariances `alpha(t)^2 Sigma_k + sigma(t)^2 I`."""
    alpha, std = sde.mean_coeff(t), sde.marginal_std(t)
    eye = jnp.eye(mixture.dim, dtype=mixture.covariances.dtype)
    return GaussianMixture(
        mixture.weights, alpha * mixture.means, alpha**2 * mixture.covariances + std**2 * eye
    )


class MixtureScore(eqx.Module):
    """The exact score `grad_x log p_t(x)` of Gaussian-mixture data under `sde`:
    `MixtureScore(sde, mixture)(x, t)` for ONE point; also `log_prob`.

    The same numbers as `marginal_mixture(sde, mixture, t).score(x)`, but fast: each
    covariance is diagonalised once, `Sigma_k = U_k diag(lambda_k) U_k^T`, so that
    `alpha^2 Sigma_k + sigma^2 I = U_k diag(alpha^2 lambda_k + sigma^2) U_k^T` needs no
    factorisation at each call.
    """

    sde: AbstractSDE
    mixture: GaussianMixture
    eigenvalues: Float[Array, "k d"]
    eigenvectors: Float[Array, "k d d"]

    def __init__(self, sde: AbstractSDE, mixture: GaussianMixture):
        self.sde = sde
        self.mixture = mixture
        self.eigenvalues, self.eigenvectors = jnp.linalg.eigh(mixture.covariances)

    def _terms(self, x, t):
        """Per component: log(weight * density) and the pull `Sigma_k(t)^{-1} (mean_k(t) - x)`."""
        alpha, std = self.sde.mean_coeff(t), self.sde.marginal_std(t)
        var = alpha**2 * self.eigenvalues + std**2  # (k, d): eigenvalues of the covariances
        diff = alpha * self.mixture.means - x  # (k, d)
        proj = jnp.einsum("kji,kj->ki", self.eigenvectors, diff)  # U_k^T diff
        log_dens = -0.5 * jnp.sum(proj**2 / var + jnp.log(2 * jnp.pi * var), axis=1)
        pulls = jnp.einsum("kij,kj->ki", self.eigenvectors, proj / var)
        return jnp.log(self.mixture.weights) + log_dens, pulls

    def __call__(self, x: Float[Array, " d"], t: Scalar) -> Float[Array, " d"]:
        logits, pulls = self._terms(x, t)
        return jax.nn.softmax(logits) @ pulls

    def log_prob(self, x: Float[Array, " d"], t: Scalar) -> Float[Array, ""]:
        """`log p_t(x)`, exactly."""
        return jax.nn.logsumexp(self._terms(x, t)[0])


# --- the score network and its loss ------------------------------------------------------------


class TimeScoreNet(eqx.Module):
    r"""$s_\theta(x, t) = f_\theta(x, \gamma(t)) / \sigma(t)$, an MLP on the point and a
    sinusoidal embedding of the time.

    $\gamma(t) = (\sin \omega_j t, \cos \omega_j t)_j$ with fixed frequencies
    $\omega_j$ spaced geometrically from 1 to `max_frequency` (not trained), so the MLP
    can resolve fast changes of the score near `t = 0`. Dividing by the SDE's marginal
    standard deviation $\sigma(t)$ gives the output the scale of the true score (compare
    `tutorial_lib.diffusion.score_matching.NoiseConditionalScore`).
    """

    mlp: eqx.nn.MLP
    frequencies: Float[Array, " n_freq"]
    sde: AbstractSDE

    def __init__(
        self,
        sde: AbstractSDE,
        dim: int = 2,
        width: int = 128,
        depth: int = 3,
        n_frequencies: int = 8,
        max_frequency: float = 100.0,
        *,
        key: PRNGKeyArray,
    ):
        self.sde = sde
        self.frequencies = jnp.geomspace(1.0, max_frequency, n_frequencies)
        self.mlp = eqx.nn.MLP(
            dim + 2 * n_frequencies, dim, width, depth, activation=jax.nn.silu, key=key
        )

    def __call__(self, x: Float[Array, " d"], t: Scalar) -> Float[Array, " d"]:
        angles = jax.lax.stop_gradient(self.frequencies) * t
        h = jnp.concatenate([x, jnp.sin(angles), jnp.cos(angles)])
        return self.mlp(h) / self.sde.marginal_std(t)


def dsm_loss_single(
    score: Score,
    sde: AbstractSDE,
    x0: Float[Array, " d"],
    t: Scalar,
    z: Float[Array, " d"],
) -> Float[Array, ""]:
    """The denoising score matching loss of ONE data point at time `t` with noise `z`,
    weighted by `lambda(t) = sigma(t)^2`: `0.5 * || sigma(t) score(x_t, t) + z ||^2` with
    `x_t = alpha(t) x0 + sigma(t) z`."""
    return 0.5 * jnp.sum((sde.marginal_std(t) * score(sde.perturb(x0, t, z), t) + z) ** 2)


def dsm_loss(
    score: Score,
    sde: AbstractSDE,
    x0: Float[Array, "..."],
    key: PRNGKeyArray,
    *,
    t_min: float = 1e-3,
) -> Float[Array, ""]:
    """The continuous-time DSM objective on a batch `x0` of shape `(n, d)`: times uniform on
    `[t_min, T]`, fresh noise per point; the mean of `dsm_loss_single`. `t_min > 0` avoids
    the singular score at `t = 0`. Another shape of `x0`, or `t_min` outside `(0, T)`, raises
    a `ValueError`."""
    if np.ndim(x0) != 2:
        raise ValueError(f"x0 must be a batch of shape (n, d), got shape {np.shape(x0)}.")
    if not 0 < t_min < sde.T:
        raise ValueError(f"t_min must lie in (0, T={sde.T}), got {t_min}.")
    k_t, k_z = jr.split(key)
    t = jr.uniform(k_t, (x0.shape[0],), minval=t_min, maxval=sde.T)
    z = jr.normal(k_z, x0.shape, x0.dtype)
    return jnp.mean(jax.vmap(dsm_loss_single, in_axes=(None, None, 0, 0, 0))(score, sde, x0, t, z))


# --- sampling ----------------------------------------------------------------------------------


def reverse_sde_sample(
    sde: AbstractSDE,
    score: Score,
    x_T: Float[Array, " d"],
    key: PRNGKeyArray,
    *,
    t_min: float = 1e-3,
    n_steps: int = 500,
) -> Float[Array, " d"]:
    """Integrate the reverse-time SDE from `x_T` at time `T` down to `t_min`: ONE sample.

    In the reversed clock `s = T - t` the reverse SDE is an ordinary forward SDE,
    `dx = [g(t)^2 score(x, t) - f(x, t)] ds + g(t) dB_s`, solved by Euler–Maruyama with
    `n_steps` equal steps and a `diffrax.VirtualBrownianTree` from `key`.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}.")
    if not 0 <= t_min < sde.T:
        raise ValueError(f"t_min must lie in [0, T={sde.T}), got {t_min}.")
    s1 = sde.T - t_min
    dt = s1 / n_steps

    def drift(s, x, args):
        t = sde.T - s
        return sde.diffusion(t) ** 2 * score(x, t) - sde.drift(x, t)

    def diffusion(s, x, args):
        return lx.DiagonalLinearOperator(sde.diffusion(sde.T - s) * jnp.ones_like(x))

    terms = diffrax.MultiTerm(
        diffrax.ODETerm(drift),
        diffrax.ControlTerm(diffusion, _brownian(0.0, s1, dt, x_T.shape, key)),
    )
    sol = diffrax.diffeqsolve(terms, diffrax.Euler(), 0.0, s1, dt, x_T, max_steps=n_steps + 1)
    return sol.ys[-1]


def _flow(sde: AbstractSDE, score: Score):
    """The probability-flow vector field `v(x, t) = f(x, t) - g(t)^2 score(x, t) / 2`."""

    def v(x, t):
        return sde.drift(x, t) - 0.5 * sde.diffusion(t) ** 2 * score(x, t)

    return v


def probability_flow_sample(
    sde: AbstractSDE,
    score: Score,
    x_T: Float[Array, " d"],
    *,
    t_min: float = 1e-3,
    ts: Float[ArrayLike, " times"] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> tuple[Float[Array, "..."], Int[Array, ""]]:
    """Solve the probability-flow ODE `dx/dt = f - g^2 score / 2` backwards from `x_T` at
    `T` to `t_min`, with Diffrax's adaptive `Tsit5` and a `PIDController`.

    Returns `(x, num_steps)`: the sample at `t_min` (or, if decreasing times `ts` are
    given, the states at those times, `(len(ts), d)`) and the number of accepted steps
    (`Tsit5` evaluates the vector field about 6 times per step).
    """
    if not 0 <= t_min < sde.T:
        raise ValueError(f"t_min must lie in [0, T={sde.T}), got {t_min}.")
    v = _flow(sde, score)
    saveat = diffrax.SaveAt(t1=True) if ts is None else diffrax.SaveAt(ts=jnp.asarray(ts))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, x, args: v(x, t)),
        diffrax.Tsit5(),
        sde.T,
        t_min,
        -0.01 * sde.T,
        x_T,
        saveat=saveat,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=4096,
    )
    ys = sol.ys[-1] if ts is None else sol.ys
    return ys, sol.stats["num_accepted_steps"]


# --- likelihood --------------------------------------------------------------------------------


def divergence_exact(
    v: Callable[[Float[Array, " d"]], Float[Array, " d"]], x: Float[Array, " d"]
) -> Float[Array, ""]:
    """`div v(x) = trace(dv/dx)`, from the full Jacobian (`jax.jacfwd`; d forward passes)."""
    return jnp.trace(jax.jacfwd(v)(x))


def divergence_hutchinson(
    v: Callable[[Float[Array, " d"]], Float[Array, " d"]],
    x: Float[Array, " d"],
    probe: Float[Array, " d"],
) -> Float[Array, ""]:
    """Hutchinson's estimate `probe^T (dv/dx) probe` of `div v(x)`: one Jacobian-vector
    product. Unbiased when the probe has mean 0 and identity covariance (Rademacher or
    standard normal)."""
    _, jvp = jax.jvp(v, (x,), (probe,))
    return jnp.dot(probe, jvp)


def probe_vectors(
    key: PRNGKeyArray, shape: tuple[int, ...], kind: str = "rademacher"
) -> Float[Array, "..."]:
    """Probe vectors for `divergence_hutchinson`: random signs `±1` (`"rademacher"`,
    the lower-variance choice) or standard normal draws (`"gaussian"`)."""
    if kind == "rademacher":
        return jr.rademacher(key, shape, dtype=jnp.float32)
    if kind == "gaussian":
        return jr.normal(key, shape)
    raise ValueError(f"kind must be 'rademacher' or 'gaussian', got {kind!r}.")


class Likelihood(NamedTuple):
    """What `log_likelihood` returns for one point `x`."""

    log_prob: Float[Array, ""]
    """`log p_{t_min}(x) = prior_log_prob(x_T) + divergence_integral`."""
    x_T: Float[Array, " d"]
    """Where the probability-flow ODE takes `x` at time `T` (its latent code)."""
    divergence_integral: Float[Array, ""]
    """`integral_{t_min}^T div v(x_t, t) dt` (exact, or Hutchinson's estimate)."""
    num_steps: Int[Array, ""]
    """The number of accepted `Tsit5` steps."""


def log_likelihood(
    sde: AbstractSDE,
    score: Score,
    x: Float[Array, " d"],
    *,
    probe: Float[Array, "..."] | None = None,
    t_min: float = 1e-3,
    prior_log_prob: Callable[[Float[Array, " d"]], Float[Array, ""]] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Likelihood:
    r"""`log p_{t_min}(x)` of ONE point through the probability-flow ODE.

    Along a solution of `dx/dt = v(x, t)` the log-density changes by the instantaneous change
    of variables `d log p_t(x_t) / dt = -div v(x_t, t)` (Chen et al. 2018), so

    $$
    \log p_{t_\min}(x) = \log p_T(x_T) + \int_{t_\min}^T \nabla \cdot v(x_t, t)\, \mathrm dt.
    $$

    The state `(x_t, integral)` is integrated forwards from `t_min` to `T` with `Tsit5`
    and a `PIDController`. The divergence is exact (`probe=None`, via the Jacobian) or
    Hutchinson's estimate with the given `probe` vector, fixed along the path (Grathwohl et
    al. 2019; it must have the shape of `x`, or a `ValueError` says so). `log p_T` is
    `sde.prior_log_prob` unless `prior_log_prob` is given; the result also holds `x_T` and
    the integral, to combine with another prior without solving again.
    """
    if not 0 <= t_min < sde.T:
        raise ValueError(f"t_min must lie in [0, T={sde.T}), got {t_min}.")
    if probe is not None and np.shape(probe) != np.shape(x):
        raise ValueError(
            f"probe must have the shape of x, {np.shape(x)}, got {np.shape(probe)}; "
            "draw one with probe_vectors(key, x.shape)."
        )
    v = _flow(sde, score)

    def augmented(t, state, args):
        y, _ = state

        def field(y_):
            return v(y_, t)

        if probe is None:
            div = divergence_exact(field, y)
        else:
            div = divergence_hutchinson(field, y, probe)
        return field(y), div

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(augmented),
        diffrax.Tsit5(),
        t_min,
        sde.T,
        0.01 * sde.T,
        (x, jnp.zeros((), x.dtype)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=4096,
    )
    x_T, integral = sol.ys[0][-1], sol.ys[1][-1]
    prior = sde.prior_log_prob if prior_log_prob is None else prior_log_prob
    return Likelihood(prior(x_T) + integral, x_T, integral, sol.stats["num_accepted_steps"])
