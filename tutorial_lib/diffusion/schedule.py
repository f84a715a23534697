"""Noise schedules of variance-preserving diffusion in continuous time t in [0, 1].

A schedule fixes how much of the data survives at time t: x_t = sqrt(abar(t)) x_0 +
sqrt(1 - abar(t)) eps. DDPM's discrete schedules (Ho et al. 2020; Nichol and Dhariwal 2021) are
samples of these curves on a grid, which is why one trained network serves the ancestral,
DDIM and ODE samplers alike.

The linear schedule is the variance-preserving SDE of `tutorial_lib.diffusion.sde.VPSDE`, which
owns its maths: `LinearSchedule(beta_min, beta_max).sde` is that SDE, and abar(t) = alpha(t)^2.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from tutorial_lib.diffusion.sde import VPSDE, AbstractSDE

__all__ = [
    "SCHEDULES",
    "CosineSchedule",
    "LinearSchedule",
    "NoiseSchedule",
    "ScheduleSDE",
    "make_schedule",
]


class NoiseSchedule(eqx.Module):
    """Interface: `log_alpha_bar(t)`, decreasing from 0 at t=0 to very negative at t=1."""

    @abc.abstractmethod
    def log_alpha_bar(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """log abar(t), the log of the signal variance kept at time t (every method of a
        schedule acts elementwise on an array of times)."""

    def alpha_bar(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        return jnp.exp(self.log_alpha_bar(t))

    def signal_and_noise(
        self, t: Float[ArrayLike, "*t"]
    ) -> tuple[Float[Array, "*t"], Float[Array, "*t"]]:
        """(sqrt(abar), sqrt(1 - abar)) at time t, computed stably for abar near 1."""
        log_a = self.log_alpha_bar(t)
        return jnp.exp(0.5 * log_a), jnp.sqrt(-jnp.expm1(log_a))

    def noise_to_signal(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """sigma_bar(t) = sqrt((1 - abar) / abar): the noise level of x_t / sqrt(abar)."""
        log_a = self.log_alpha_bar(t)
        return jnp.sqrt(jnp.expm1(-log_a))

    def time_of_noise_to_signal(self, sigma_bar: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        """Inverse of `noise_to_signal`, by bisection (every schedule here is monotone)."""
        target = jnp.log1p(jnp.square(jnp.asarray(sigma_bar, dtype=float)))  # = -log abar

        def body(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            above = -self.log_alpha_bar(mid) > target
            return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

        lo, hi = jax.lax.fori_loop(0, 40, body, (jnp.zeros_like(target), jnp.ones_like(target)))
        return 0.5 * (lo + hi)

    @property
    def sde(self) -> AbstractSDE:
        """This schedule as a variance-preserving SDE on `[0, 1]` (`ScheduleSDE`), for the
        probability-flow likelihood of `tutorial_lib.diffusion.sde.log_likelihood`."""
        return ScheduleSDE(self)

    def add_noise(
        self, x0: Float[Array, "*#shape"], eps: Float[Array, "*#shape"], t: Float[ArrayLike, ""]
    ) -> Float[Array, "*#shape"]:
        """Sample of q(x_t | x_0) given the standard normal draw `eps` (`x0` and `eps`
        broadcast against each other)."""
        a, s = self.signal_and_noise(t)
        return a * x0 + s * eps


class LinearSchedule(NoiseSchedule):
    """DDPM's linear betas (1e-4 ... 0.02 over 1000 steps) in continuous time (Song et al. 2021):
    beta(t) = beta_min + t (beta_max - beta_min), log abar(t) = -int_0^t beta.

    This is the variance-preserving SDE `VPSDE(beta_min, beta_max)` (same defaults) seen as a
    schedule: `sde` builds it, and log abar(t) = 2 log alpha(t) = 2 `sde.log_mean_coeff(t)`."""

    beta_min: float | Float[Array, ""] = VPSDE.beta_min  # a traced array inside `jit`
    beta_max: float | Float[Array, ""] = VPSDE.beta_max

    @property
    def sde(self) -> VPSDE:
        """The variance-preserving SDE whose abar(t) = alpha(t)^2 this schedule is."""
        return VPSDE(beta_min=self.beta_min, beta_max=self.beta_max)

    def log_alpha_bar(self, t):
        return 2 * self.sde.log_mean_coeff(jnp.asarray(t, dtype=float))


class CosineSchedule(NoiseSchedule):
    """Nichol and Dhariwal's cosine schedule, abar(t) = f(t) / f(0) with
    f(t) = cos^2(pi/2 (t + s) / (1 + s)); clipped so abar(1) stays positive."""

    s: float = 0.008
    min_alpha_bar: float = 1e-5

    def log_alpha_bar(self, t):
        t = jnp.asarray(t, dtype=float)
        f = jnp.cos(0.5 * math.pi * (t + self.s) / (1 + self.s))
        f0 = math.cos(0.5 * math.pi * self.s / (1 + self.s))
        log_a = 2 * (jnp.log(jnp.maximum(f, 1e-20)) - math.log(f0))
        return jnp.maximum(log_a, math.log(self.min_alpha_bar))


class ScheduleSDE(AbstractSDE):
    """The variance-preserving SDE of any schedule: `dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW`
    with `beta(t) = -d log abar(t) / dt` (by automatic differentiation), so that
    `alpha(t) = sqrt(abar(t))`, `sigma(t) = sqrt(1 - abar(t))`; the prior is `N(0, I)`."""

    schedule: NoiseSchedule
    T: float = 1.0

    def beta(self, t: Float[ArrayLike, "*t"]) -> Float[Array, "*t"]:
        t = jnp.asarray(t, dtype=float)
        _, slope = jax.jvp(self.schedule.log_alpha_bar, (t,), (jnp.ones_like(t),))
        return -slope

    def drift(self, x, t):
        return -0.5 * self.beta(t) * x

    def diffusion(self, t):
        return jnp.sqrt(self.beta(t))

    def mean_coeff(self, t):
        return self.schedule.signal_and_noise(t)[0]

    def marginal_std(self, t):
        return self.schedule.signal_and_noise(t)[1]

    def prior_std(self):
        return 1.0


SCHEDULES = {"linear": LinearSchedule, "cosine": CosineSchedule}


def make_schedule(name: str) -> NoiseSchedule:
    """A schedule by name: 'linear' or 'cosine'."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}: use one of {sorted(SCHEDULES)}")
    return SCHEDULES[name]()
