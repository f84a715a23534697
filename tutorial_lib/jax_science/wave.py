r"""The 2-D acoustic wave equation by finite differences, written twice.

The pressure field $p(x, z, t)$ obeys $\partial_t^2 p = c^2 \nabla^2 p + s$,
discretised with second-order centred differences in time and a five-point Laplacian in
space (Alford et al. 1974) and zero pressure on the edges of the grid. One time step is

$$
p^{n+1} = 2 p^n - p^{n-1} + (c\,\Delta t/\Delta x)^2 \nabla_h^2 p^n
+ (c\,\Delta t/\Delta x)^2 s^n \text{ at the source cell,}
$$

with the source wavelet $s^n$ scaled by the local Courant number squared so that the
field's amplitude is of order one whatever the grid spacing.

`simulate_numpy` is the textbook NumPy program (a Python loop over time steps);
`simulate_jax` is the same arithmetic as one compiled `jax.lax.scan`. Both return
the final pressure field and the seismogram recorded at the receivers, and agree to float32
round-off. The JAX version is differentiable in the velocity model, which the
full-waveform-inversion example relies on.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

__all__ = [
    "courant_number",
    "layered_velocity",
    "ricker",
    "simulate_jax",
    "simulate_numpy",
    "sponge",
]

# The leapfrog scheme with a five-point Laplacian is stable for c dt / dx <= 1/sqrt(2) in 2-D.
MAX_COURANT_2D = 1 / math.sqrt(2)


def ricker(t: Float[np.ndarray, " n"], f0: float, t0: float) -> Float[np.ndarray, " n"]:
    """Ricker wavelet (Ricker 1953) of peak frequency `f0` [Hz] centred at time `t0` [s]."""
    arg = (math.pi * f0 * (np.asarray(t) - t0)) ** 2
    return ((1 - 2 * arg) * np.exp(-arg)).astype(np.float32)


def layered_velocity(nz: int, nx: int) -> Float[np.ndarray, "nz nx"]:
    """A three-layer velocity model [m/s] with a slow circular inclusion, for demonstrations."""
    z = np.arange(nz)[:, None] / nz
    x = np.arange(nx)[None, :] / nx
    c = np.where(z < 0.45, 1500.0, np.where(z < 0.7, 2000.0, 2500.0))
    inclusion = (z - 0.58) ** 2 + (x - 0.65) ** 2 < 0.07**2
    c = np.where(inclusion, 1200.0, c)
    return np.broadcast_to(c, (nz, nx)).astype(np.float32)


def sponge(
    nz: int, nx: int, width: int = 40, strength: float = 0.01, free_surface: bool = True
) -> Float[np.ndarray, "nz nx"]:
    """Damping factors for an absorbing boundary strip (Cerjan et al. 1985).

    Both stored time levels are multiplied by these factors every step, so waves entering the
    `width`-cell strip fade out instead of reflecting from the grid edge. With
    `free_surface` the top edge is left reflecting (zero pressure), as at the Earth's surface.
    """
    if width < 1 or 2 * width >= nx or 2 * width >= nz:
        raise ValueError(f"sponge width {width} does not fit a {nz}x{nx} grid.")
    ramp = np.exp(-((strength * (width - np.arange(width))) ** 2))  # edge ... interior
    factor_x = np.ones(nx)
    factor_x[:width], factor_x[nx - width :] = ramp, ramp[::-1]
    factor_z = np.ones(nz)
    factor_z[nz - width :] = ramp[::-1]
    if not free_surface:
        factor_z[:width] = ramp
    return (factor_z[:, None] * factor_x[None, :]).astype(np.float32)


def courant_number(velocity, dx: float, dt: float) -> float:
    """The largest Courant number `max(c) * dt / dx` of a velocity model."""
    return float(np.max(np.asarray(velocity))) * dt / dx


def _check_inputs(velocity, dx, dt, wavelet, source, receivers, damping):
    velocity = np.asarray(velocity)
    if velocity.ndim != 2 or min(velocity.shape) < 3:
        raise ValueError(
            f"velocity must be a 2-D grid of at least 3x3 points, got shape {velocity.shape}."
        )
    if not np.all(np.isfinite(velocity)) or np.any(velocity <= 0):
        raise ValueError("velocity must be finite and positive everywhere (m/s).")
    if dx <= 0 or dt <= 0:
        raise ValueError(f"dx and dt must be positive, got dx={dx}, dt={dt}.")
    courant = courant_number(velocity, dx, dt)
    if courant > MAX_COURANT_2D:
        dt_max = MAX_COURANT_2D * dx / velocity.max()
        raise ValueError(
            f"unstable time step: the Courant number max(c)*dt/dx = {courant:.3f} exceeds "
            f"1/sqrt(2) = {MAX_COURANT_2D:.3f}; use dt <= {dt_max:.3g} s."
        )
    if np.ndim(wavelet) != 1:
        raise ValueError(f"wavelet must be 1-D (one value per time step), got {np.shape(wavelet)}.")
    if damping is not None and np.shape(damping) != velocity.shape:
        raise ValueError(
            f"damping must have the velocity's shape {velocity.shape}, got {np.shape(damping)}."
        )
    nz, nx = velocity.shape
    points = np.concatenate([np.reshape(source, (1, 2)), np.reshape(receivers, (-1, 2))])
    inside = (
        (points[:, 0] > 0) & (points[:, 0] < nz - 1) & (points[:, 1] > 0) & (points[:, 1] < nx - 1)
    )
    if not np.all(inside):
        raise ValueError(
            f"source and receivers must be (iz, ix) indices strictly inside the {nz}x{nx} grid "
            f"(the edges are held at zero pressure); got {points[~inside].tolist()}."
        )


def simulate_numpy(
    velocity: Float[ArrayLike, "..."],
    *,
    dx: float,
    dt: float,
    wavelet: Float[ArrayLike, "..."],
    source: tuple[int, int] | Int[ArrayLike, "2"],
    receivers: Int[ArrayLike, "receivers 2"],
    damping: Float[ArrayLike, "..."] | None = None,
) -> tuple[Float[np.ndarray, "nz nx"], Float[np.ndarray, "steps receivers"]]:
    """Simulate with NumPy and a Python loop over time steps (float32 throughout).

    `velocity` is the `(nz, nx)` grid [m/s], `wavelet` the source's `(steps,)` time series
    and `damping` (for example `sponge`), of the velocity's shape, multiplies both time
    levels every step; `None` keeps every edge reflecting. Shapes, signs, the stability of
    the time step and the positions of source and receivers are checked, with a
    `ValueError` saying what is wrong.
    """
    _check_inputs(velocity, dx, dt, wavelet, source, receivers, damping)
    damping = (
        np.ones_like(velocity, np.float32) if damping is None else np.asarray(damping, np.float32)
    )
    c2 = (np.asarray(velocity, np.float32) * np.float32(dt / dx)) ** 2
    wavelet = np.asarray(wavelet, np.float32) * c2[source]
    rz, rx = np.asarray(receivers).T
    p_prev = np.zeros_like(c2)
    p = np.zeros_like(c2)
    traces = np.empty((len(wavelet), len(rz)), np.float32)
    for n in range(len(wavelet)):
        lap = np.zeros_like(p)
        lap[1:-1, 1:-1] = (
            p[2:, 1:-1] + p[:-2, 1:-1] + p[1:-1, 2:] + p[1:-1, :-2] - 4 * p[1:-1, 1:-1]
        )
        # Cerjan damping: every level is damped twice, once as p_next and once as p_prev.
        p_next = damping * (2 * p - damping * p_prev + c2 * lap)
        p_next[source] += damping[source] * wavelet[n]
        p_prev, p = p, p_next
        traces[n] = p[rz, rx]
    return p, traces


def _laplacian(p: Float[Array, "nz nx"]) -> Float[Array, "nz nx"]:
    interior = p[2:, 1:-1] + p[:-2, 1:-1] + p[1:-1, 2:] + p[1:-1, :-2] - 4 * p[1:-1, 1:-1]
    return jnp.pad(interior, 1)


@functools.partial(jax.jit, static_argnames="unroll")
def _simulate_jax(c2, damping, wavelet, source, rz, rx, unroll):
    def step(carry, w):
        p_prev, p = carry
        # Damping p_prev here rather than when it is stored keeps the carry a plain swap
        # (p, p_next), which XLA can update in place (about 2x faster than damping both).
        p_next = damping * (2 * p - damping * p_prev + c2 * _laplacian(p))
        p_next = p_next.at[source].add(damping[source] * w)
        return (p, p_next), p_next[rz, rx]

    zeros = jnp.zeros_like(c2)
    (_, p), traces = jax.lax.scan(step, (zeros, zeros), wavelet, unroll=unroll)
    return p, traces


def simulate_jax(
    velocity: Float[ArrayLike, "..."],
    *,
    dx: float,
    dt: float,
    wavelet: Float[ArrayLike, "..."],
    source: tuple[int, int] | Int[ArrayLike, "2"],
    receivers: Int[ArrayLike, "receivers 2"],
    damping: Float[ArrayLike, "..."] | None = None,
    unroll: int = 2,
) -> tuple[Float[Array, "nz nx"], Float[Array, "steps receivers"]]:
    """Simulate with `jax.lax.scan` under `jax.jit`; same arguments as NumPy's.

    `unroll=2` puts two time steps in each loop iteration. The two time levels swap roles
    every step, so with an even unroll XLA can keep updating the same two buffers instead of
    copying the carried fields each iteration (about twice as fast on a 2-core CPU; measured in the
    book's first chapter).

    Differentiable with respect to `velocity` (and `wavelet`), and `vmap`-able over
    `source` positions. Inputs are checked in Python when they are concrete; inside
    `jax.grad`, `jax.vmap` or `jax.jit` they are tracers and the checks are skipped.
    """
    arrays = (velocity, wavelet, source, receivers, damping)
    if not any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(arrays)):
        _check_inputs(velocity, dx, dt, wavelet, source, receivers, damping)
    c2 = (jnp.asarray(velocity) * (dt / dx)) ** 2
    source = (source[0], source[1])
    wavelet = jnp.asarray(wavelet) * c2[source]
    rz, rx = jnp.asarray(receivers).T
    damping = jnp.ones_like(c2) if damping is None else jnp.asarray(damping, c2.dtype)
    return _simulate_jax(c2, damping, wavelet, source, rz, rx, unroll)
