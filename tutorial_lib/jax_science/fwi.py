r"""Full-waveform inversion (Tarantola 1984; Virieux & Operto 2009) through `wave`.

FWI finds the velocity model $c$ whose simulated seismograms match the recorded ones,
by gradient descent on the data misfit

$$
\chi(c) = \frac{\sum_s \lVert d_s(c) - d_s^{\mathrm{obs}} \rVert^2}
{\sum_s \lVert d_s^{\mathrm{obs}} \rVert^2},
$$

where $d_s(c)$ is the seismogram of shot $s$ simulated by
`tutorial_lib.jax_science.wave.simulate_jax`. The gradient
$\partial\chi/\partial c$, which geophysicists compute with a hand-written adjoint
simulation, is here `jax.grad` of the simulation itself.

- `Survey` holds the acquisition (sources, receivers, wavelet, grid) and
  `make_survey` builds one.
- `shot` simulates one source; `forward` all of them with `jax.vmap`.
- `misfit`, `velocity_from_params`, `invert` (Optax Adam) and
  `model_error` make up the inversion.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int

from tutorial_lib.jax_science import wave

__all__ = [
    "Survey",
    "forward",
    "invert",
    "make_survey",
    "misfit",
    "model_error",
    "shot",
    "velocity_from_params",
]


class Survey(eqx.Module):
    """Everything about an experiment except the velocity model: grid, wavelet, geometry.

    `mask` is 1 inside the region the inversion may change (inside the receiver array,
    away from the absorbing strip) and 0 elsewhere.
    """

    dx: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    wavelet: Float[Array, " steps"]
    sources: Int[Array, "shots 2"]
    receivers: Int[Array, "receivers 2"]
    damping: Float[Array, "nz nx"]
    mask: Float[Array, "nz nx"]

    @property
    def shape(self) -> tuple[int, int]:
        return self.damping.shape

    @property
    def max_stable_velocity(self) -> float:
        """The fastest velocity this grid and time step can simulate stably."""
        return wave.MAX_COURANT_2D * self.dx / self.dt


def make_survey(
    n: int,
    *,
    extent: float = 900.0,
    n_sources: int = 5,
    f0: float = 12.0,
    duration: float = 1.0,
    max_velocity: float = 3000.0,
    sponge_width: int | None = None,
    geometry: str = "ring",
) -> Survey:
    """An `n x n` grid of side `extent` metres with absorbing edges.

    `geometry="ring"`: sources along the top of the target region and receivers all around
    it, so waves cross the target from many directions (as in cross-well surveys or
    ultrasound tomography). `geometry="surface"`: sources and receivers only just below a
    free surface, the usual seismic survey. `duration` seconds are simulated with a time step
    of Courant number 0.5 for `max_velocity`.
    """
    if geometry not in ("ring", "surface"):
        raise ValueError(f"geometry must be 'ring' or 'surface', got {geometry!r}.")
    width = sponge_width if sponge_width is not None else max(8, n // 6)
    if n < 2 * width + 10:
        raise ValueError(f"n={n} is too small for a sponge of {width} cells on each side.")
    if n_sources < 1:
        raise ValueError(f"n_sources must be at least 1, got {n_sources}.")
    dx = extent / n
    dt = 0.5 * dx / max_velocity
    steps = math.ceil(duration / dt)
    wavelet = wave.ricker(np.arange(steps) * dt, f0=f0, t0=1.2 / f0)
    lo, hi = width + 1, n - width - 2  # the target region's first and last row/column
    mask = np.zeros((n, n), np.float32)
    if geometry == "ring":
        damping = wave.sponge(n, n, width=width, strength=0.025, free_surface=False)
        columns = np.linspace(lo + 3, hi - 3, n_sources).round().astype(int)
        sources = np.stack([np.full(n_sources, lo), columns], axis=1)
        side = np.arange(lo, hi + 1)
        edge_lo, edge_hi = np.full_like(side, lo), np.full_like(side, hi)
        receivers = np.concatenate(
            [
                np.stack([edge_lo, side], 1),  # top
                np.stack([side[1:], edge_hi[1:]], 1),  # right
                np.stack([edge_hi[1:], side[:-1]], 1),  # bottom
                np.stack([side[1:-1], edge_lo[1:-1]], 1),  # left
            ]
        )
        mask[lo + 1 : hi, lo + 1 : hi] = 1.0
    else:
        damping = wave.sponge(n, n, width=width, strength=0.025, free_surface=True)
        columns = np.linspace(lo + 3, hi - 3, n_sources).round().astype(int)
        sources = np.stack([np.full(n_sources, 2), columns], axis=1)
        side = np.arange(lo, hi + 1)
        receivers = np.stack([np.full_like(side, 2), side], axis=1)
        mask[4 : n - width, lo + 1 : hi] = 1.0
    return Survey(
        dx=dx,
        dt=dt,
        wavelet=jnp.asarray(wavelet),
        sources=jnp.asarray(sources),
        receivers=jnp.asarray(receivers),
        damping=jnp.asarray(damping),
        mask=jnp.asarray(mask),
    )


def shot(
    velocity: Float[Array, "nz nx"], source: Int[Array, "2"], survey: Survey
) -> Float[Array, "steps receivers"]:
    """The seismogram of one source, from `tutorial_lib.jax_science.wave.simulate_jax`."""
    _, traces = wave.simulate_jax(
        velocity,
        dx=survey.dx,
        dt=survey.dt,
        wavelet=survey.wavelet,
        source=source,
        receivers=survey.receivers,
        damping=survey.damping,
    )
    return traces


def forward(
    velocity: Float[ArrayLike, "nz nx"], survey: Survey
) -> Float[Array, "shots steps receivers"]:
    """All shots of the survey at once, `jax.vmap` of `shot` over the sources."""
    if not isinstance(velocity, jax.core.Tracer):
        velocity = np.asarray(velocity)
        if velocity.shape != survey.shape:
            raise ValueError(
                f"velocity has shape {velocity.shape}, the survey's grid is {survey.shape}."
            )
        if velocity.min() <= 0 or velocity.max() > survey.max_stable_velocity:
            raise ValueError(
                f"velocity must lie in (0, {survey.max_stable_velocity:.0f}] m/s for this survey's "
                f"time step (got {velocity.min():.0f}..{velocity.max():.0f}); build the survey "
                f"with a larger max_velocity."
            )
    return jax.vmap(shot, in_axes=(None, 0, None))(jnp.asarray(velocity), survey.sources, survey)


def misfit(
    velocity: Float[ArrayLike, "nz nx"],
    observed: Float[Array, "shots steps receivers"],
    survey: Survey,
) -> Float[Array, ""]:
    """Relative least-squares data misfit: 1 for zero data, 0 for a perfect fit."""
    residual = forward(velocity, survey) - observed
    return jnp.sum(residual**2) / jnp.sum(observed**2)


def velocity_from_params(
    params: Float[Array, "mz mx"], background: Float[Array, "nz nx"], survey: Survey
) -> Float[Array, "nz nx"]:
    """Background plus a perturbation stored on a coarser grid, upsampled bilinearly.

    The coarse grid is a simple regulariser: it cannot represent wiggles finer than its
    spacing. The mask keeps the absorbing strip and the acquisition line fixed.
    """
    perturbation = jax.image.resize(params, survey.shape, "linear")
    return background + survey.mask * perturbation


@eqx.filter_jit
def _step(params, opt_state, background, observed, survey, learning_rate):
    def loss(p):
        return misfit(velocity_from_params(p, background, survey), observed, survey)

    value, grads = jax.value_and_grad(loss)(params)
    updates, opt_state = optax.adam(learning_rate).update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, value


def invert(
    background: Float[ArrayLike, "nz nx"],
    observed: Float[Array, "shots steps receivers"],
    survey: Survey,
    *,
    iterations: int,
    learning_rate: float = 15.0,
    coarsening: int = 3,
    callback=None,
) -> tuple[Float[Array, "nz nx"], Float[np.ndarray, " {iterations}"]]:
    """Fit the observed seismograms by Adam, starting from `background`.

    `learning_rate` is in m/s: Adam's steps are roughly that large per iteration.
    `callback(iteration, velocity)`, if given, is called after every step. Returns the final
    velocity model and the misfit *before* each step.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations}.")
    nz, nx = survey.shape
    if nz % coarsening or nx % coarsening:
        raise ValueError(f"coarsening={coarsening} must divide the grid size {survey.shape}.")
    background = jnp.asarray(background)
    if background.shape != survey.shape:
        raise ValueError(f"background has shape {background.shape}, grid is {survey.shape}.")
    params = jnp.zeros((nz // coarsening, nx // coarsening), background.dtype)
    opt_state = optax.adam(learning_rate).init(params)
    history = []
    for i in range(iterations):
        params, opt_state, value = _step(
            params, opt_state, background, observed, survey, learning_rate
        )
        history.append(value)
        if callback is not None:
            callback(i, velocity_from_params(params, background, survey))
    return velocity_from_params(params, background, survey), np.asarray(jnp.stack(history))


def model_error(
    velocity: Float[ArrayLike, "nz nx"],
    true: Float[ArrayLike, "nz nx"],
    background: Float[ArrayLike, "nz nx"],
    survey: Survey,
) -> float:
    """Relative model error inside the mask: 1 for the starting model, 0 for the true model."""
    mask = np.asarray(survey.mask) > 0
    error = np.asarray(velocity)[mask] - np.asarray(true)[mask]
    anomaly = np.asarray(true)[mask] - np.asarray(background)[mask]
    return float(np.linalg.norm(error) / np.linalg.norm(anomaly))
