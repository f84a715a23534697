"""Shared test doubles: the exact noise and v predictors for Gaussian pixels."""

import equinox as eqx


def _posterior(schedule, mu, sd, x, t):
    """Signal and noise levels, E[x0 | x_t] and E[eps | x_t] for x0 ~ N(mu, sd^2)."""
    a, s = schedule.signal_and_noise(t)
    residual = (x - a * mu) / (a**2 * sd**2 + s**2)
    return a, s, mu + a * sd**2 * residual, s * residual


class GaussianEps(eqx.Module):
    """The exact noise predictor E[eps | x_t] for data x0 ~ N(mu, sd^2) in every pixel."""

    schedule: eqx.Module
    mu: float
    sd: float

    def __call__(self, x, t, *, key=None):
        return _posterior(self.schedule, self.mu, self.sd, x, t)[3]


class GaussianV(eqx.Module):
    """The exact v-predictor E[v | x_t] = a E[eps | x_t] - s E[x0 | x_t] for x0 ~ N(mu, sd^2)."""

    schedule: eqx.Module
    mu: float
    sd: float

    def __call__(self, x, t, *, key=None):
        a, s, x0, eps = _posterior(self.schedule, self.mu, self.sd, x, t)
        return a * eps - s * x0
