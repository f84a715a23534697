r"""A batch of small ODE solves, done by Diffrax (`vmap` + `jit`) and by SciPy (a Python loop).

The problem is the Lotka–Volterra predator–prey system (Lotka 1925; Volterra 1926),

$$
\dot x = \alpha x - \beta x y, \qquad \dot y = \delta x y - \gamma y,
$$

with prey `x`, predators `y` and one parameter vector `(alpha, beta, gamma, delta)` per
instance. `sample_problems` draws many instances with different parameters and initial
populations; `solve_diffrax` solves one of them with Diffrax's `Tsit5` (Tsitouras 2011)
and an adaptive PID step-size controller, and `solve_diffrax_batch` is that same function
under `jax.vmap` and `jax.jit`. `solve_scipy` and `solve_scipy_batch` do the
same with `scipy.integrate.solve_ivp` and `RK45` (Dormand–Prince 5(4)), the closest
SciPy solver: both are explicit 5th-order Runge–Kutta pairs with embedded error estimates.
`solve_reference` gives a much more accurate answer to measure both against.

For a fair comparison run the JAX solvers in float64 (`with jax.enable_x64(True):`), since
SciPy computes in float64.
"""

import functools

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float
from scipy.integrate import solve_ivp

__all__ = [
    "lotka_volterra",
    "lotka_volterra_numpy",
    "sample_problems",
    "solve_diffrax",
    "solve_diffrax_batch",
    "solve_reference",
    "solve_scipy",
    "solve_scipy_batch",
]


def lotka_volterra(t: Float[Array, ""], y: Float[Array, "2"], params: Float[Array, "4"]):
    """The Lotka–Volterra vector field in JAX, in Diffrax's `f(t, y, args)` convention."""
    alpha, beta, gamma, delta = params
    prey, predators = y
    return jnp.stack(
        [alpha * prey - beta * prey * predators, delta * prey * predators - gamma * predators]
    )


def lotka_volterra_numpy(t: float, y: Float[np.ndarray, "2"], *params: float) -> list[float]:
    """The same vector field for SciPy's `fun(t, y, *args)` convention."""
    alpha, beta, gamma, delta = params
    prey, predators = y
    return [alpha * prey - beta * prey * predators, delta * prey * predators - gamma * predators]


def sample_problems(
    n: int, seed: int = 0
) -> tuple[Float[np.ndarray, "n 2"], Float[np.ndarray, "n 4"]]:
    """`n` random instances: initial populations `y0` and parameters, both float64.

    Parameters are drawn around `(1.0, 0.4, 1.0, 0.3)` (±20–30 %) and initial populations
    uniformly in `[1, 4]`, so every instance oscillates on a different closed orbit.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of problems, got {n}.")
    rng = np.random.default_rng(seed)
    low, high = np.array([0.8, 0.3, 0.8, 0.2]), np.array([1.2, 0.5, 1.2, 0.4])
    params = rng.uniform(low, high, size=(n, 4))
    y0 = rng.uniform(1.0, 4.0, size=(n, 2))
    return y0, params


def _check(y0, params, ts) -> None:
    if np.shape(y0)[-1:] != (2,) or np.shape(params)[-1:] != (4,):
        raise ValueError(
            f"expected y0 of shape (..., 2) and params of shape (..., 4), got "
            f"{np.shape(y0)} and {np.shape(params)}."
        )
    ts = np.asarray(ts)
    if ts.ndim != 1 or len(ts) < 2 or np.any(np.diff(ts) <= 0):
        raise ValueError("ts must be a 1-D array of at least two strictly increasing times.")


def solve_diffrax(
    y0: Float[Array, "2"],
    params: Float[Array, "4"],
    ts: Float[Array, " times"],
    *,
    rtol: float | Float[Array, ""] = 1e-6,
    atol: float | Float[Array, ""] = 1e-8,
    max_steps: int = 4096,
) -> Float[Array, "times 2"]:
    """One solve with Diffrax: `Tsit5` + `PIDController`, saved at `ts` (from `ts[0]`)."""
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(lotka_volterra),
        diffrax.Tsit5(),
        t0=ts[0],
        t1=ts[-1],
        dt0=None,  # let the controller pick the first step
        y0=y0,
        args=params,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    return solution.ys


# rtol and atol are traced, not static: changing the tolerance does not recompile.
@functools.partial(jax.jit, static_argnames="max_steps")
def _solve_batch(y0, params, ts, rtol, atol, max_steps):
    solve = functools.partial(solve_diffrax, rtol=rtol, atol=atol, max_steps=max_steps)
    return jax.vmap(solve, in_axes=(0, 0, None))(y0, params, ts)


def solve_diffrax_batch(
    y0: Float[ArrayLike, "..."],
    params: Float[ArrayLike, "..."],
    ts: Float[ArrayLike, "..."],
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    max_steps: int = 4096,
) -> Float[Array, "n times 2"]:
    """All instances at once: `solve_diffrax` under `jax.vmap`, compiled by `jax.jit`.

    `y0` is `(n, 2)`, `params` `(n, 4)` and `ts` 1-D and increasing; a `ValueError` says
    which does not fit. Each instance keeps its own adaptive step size; the batched loop
    runs until the slowest instance has finished.
    """
    _check(y0, params, ts)
    y0, params, ts = jnp.asarray(y0), jnp.asarray(params), jnp.asarray(ts)
    tol = jnp.asarray(rtol, ts.dtype), jnp.asarray(atol, ts.dtype)
    return _solve_batch(y0, params, ts, *tol, max_steps)


def solve_scipy(
    y0: Float[np.ndarray, "2"],
    params: Float[np.ndarray, "4"],
    ts: Float[np.ndarray, " times"],
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    method: str = "RK45",
) -> Float[np.ndarray, "times 2"]:
    """One solve with `scipy.integrate.solve_ivp`, evaluated at `ts`."""
    solution = solve_ivp(
        lotka_volterra_numpy,
        (ts[0], ts[-1]),
        y0,
        method=method,
        t_eval=ts,
        rtol=rtol,
        atol=atol,
        args=tuple(params),
    )
    if not solution.success:
        raise RuntimeError(f"solve_ivp failed: {solution.message}")
    return solution.y.T


def solve_scipy_batch(
    y0: Float[ArrayLike, "..."],
    params: Float[ArrayLike, "..."],
    ts: Float[ArrayLike, "..."],
    *,
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> Float[np.ndarray, "n times 2"]:
    """All instances with `RK45`, one after another in a Python loop (inputs checked as in
    `solve_diffrax_batch`)."""
    _check(y0, params, ts)
    y0, params, ts = (np.asarray(a, np.float64) for a in (y0, params, ts))
    return np.stack(
        [solve_scipy(y, p, ts, rtol=rtol, atol=atol) for y, p in zip(y0, params, strict=True)]
    )


def solve_reference(
    y0: Float[ArrayLike, "..."], params: Float[ArrayLike, "..."], ts: Float[ArrayLike, "..."]
) -> Float[np.ndarray, "n times 2"]:
    """A near-exact answer: SciPy's 8th-order `DOP853` at `rtol=1e-12`, `atol=1e-12` (inputs
    checked as in `solve_diffrax_batch`)."""
    _check(y0, params, ts)
    y0, params, ts = (np.asarray(a, np.float64) for a in (y0, params, ts))
    return np.stack(
        [
            solve_scipy(y, p, ts, rtol=1e-12, atol=1e-12, method="DOP853")
            for y, p in zip(y0, params, strict=True)
        ]
    )
