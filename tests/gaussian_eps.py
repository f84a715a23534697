"""Shared test doubles: the exact noise and v predictors for Gaussian pixels."""

import equinox as eqx


class GaussianEps(eqx.Module):
    """The exact noise predictor E[eps | x_t] for data x0 ~ N(mu, sd^2) in every pixel."""

    schedule: eqx.Module
    mu: float
    sd: float

    def __call__(self, x, t, *, key=None):
        a, n = self.schedule.signal_and_noise(t)
        return n * (x - a * self.mu) / (a**2 * self.sd**2 + n**2)


class GaussianV(eqx.Module):
    """The exact v-predictor E[v | x_t] = a E[eps | x_t] - s E[x0 | x_t] for x0 ~ N(mu, sd^2)."""

    schedule: eqx.Module
    mu: float
    sd: float

    def __call__(self, x, t, *, key=None):
        a, s = self.schedule.signal_and_noise(t)
        x0 = self.mu + a * self.sd**2 * (x - a * self.mu) / (a**2 * self.sd**2 + s**2)
        eps = s * (x - a * self.mu) / (a**2 * self.sd**2 + s**2)
        return a * eps - s * x0
