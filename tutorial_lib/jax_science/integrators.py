r"""A fixed-step fourth-order Runge–Kutta integrator, written as a loop JAX can compile well.

The classical RK4 step for $\dot y = f(t, y)$ with step $h$ is

$$
k_1 = f(t, y),\; k_2 = f(t + \tfrac h2, y + \tfrac h2 k_1),\;
k_3 = f(t + \tfrac h2, y + \tfrac h2 k_2),\; k_4 = f(t + h, y + h k_3),
$$

$$
y \leftarrow y + \tfrac h6 (k_1 + 2k_2 + 2k_3 + k_4),
$$

with a global error of order $h^4$ (Hairer, Nørsett & Wanner 1993).

`rk4_scan` runs the steps with `jax.lax.scan`: the loop body is traced and
compiled once, whatever the number of steps. `rk4_unrolled` computes the same numbers
with a Python `for` loop; under `jax.jit` that loop is *unrolled* into one long
program whose compile time grows quickly with the number of steps (measured in the book's
"Control flow and loops" chapter). Use it only to see that cost.

The state `y` may be any pytree of arrays (an array, a tuple, a dict); the vector field
`f(t, y, args)` returns a pytree of the same structure. `lotka_volterra` is the
predator–prey model used as the running example, with its conserved quantity
`lotka_volterra_invariant`.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

__all__ = [
    "VectorField",
    "lotka_volterra",
    "lotka_volterra_invariant",
    "rk4_scan",
    "rk4_step",
    "rk4_unrolled",
]

VectorField = Callable[[Any, PyTree, Any], PyTree]


def rk4_step(f: VectorField, t: ArrayLike, y: PyTree, dt: ArrayLike, args: Any = None) -> PyTree:
    """One classical Runge–Kutta step of size `dt` from `(t, y)`; returns the new state."""

    def axpy(a, x, y):  # y + a * x, leaf by leaf
        return jax.tree.map(lambda xi, yi: yi + a * xi, x, y)

    k1 = f(t, y, args)
    k2 = f(t + dt / 2, axpy(dt / 2, k1, y), args)
    k3 = f(t + dt / 2, axpy(dt / 2, k2, y), args)
    k4 = f(t + dt, axpy(dt, k3, y), args)
    return jax.tree.map(
        lambda yi, a, b, c, d: yi + dt / 6 * (a + 2 * b + 2 * c + d), y, k1, k2, k3, k4
    )


def _check(n_steps: object, dt: Any) -> None:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(
            f"n_steps must be a positive Python int (it fixes the length of the compiled loop), "
            f"got {n_steps!r}."
        )
    if isinstance(dt, (int, float)) and (dt == 0 or dt != dt):
        raise ValueError(f"dt must be a non-zero finite number, got {dt!r}.")


def _with_initial(y0: PyTree, ys: PyTree) -> PyTree:
    return jax.tree.map(lambda a, b: jnp.concatenate([jnp.asarray(a)[None], b]), y0, ys)


@functools.partial(jax.jit, static_argnames=("f", "n_steps", "unroll"))
def _rk4_scan(f, y0, t0, dt, n_steps, args, unroll):
    def body(y, t):
        y_next = rk4_step(f, t, y, dt, args)
        return y_next, y_next

    times = t0 + dt * jnp.arange(n_steps)
    _, ys = jax.lax.scan(body, y0, times, unroll=unroll)
    return t0 + dt * jnp.arange(n_steps + 1), _with_initial(y0, ys)


def rk4_scan(
    f: VectorField,
    y0: PyTree,
    t0: ArrayLike,
    dt: ArrayLike,
    n_steps: object,
    args: Any = None,
    *,
    unroll: int = 1,
) -> tuple[Float[Array, " {n_steps}+1"], PyTree]:
    """Integrate `dy/dt = f(t, y, args)` with `n_steps` RK4 steps of size `dt`.

    Returns `(ts, ys)`: the `n_steps + 1` times `t0 + k * dt` and the states at those
    times, stacked along a new leading axis of every leaf (`ys[0]` is `y0`). Compiled with
    `jax.jit`; `f` and `n_steps` are static (a new function or step count compiles
    anew), while `y0`, `t0`, `dt` and `args` may be traced, so the result can be
    differentiated with respect to them or `vmap`-ed over them. `unroll` puts that many
    steps in each iteration of the compiled loop.
    """
    _check(n_steps, dt)
    if isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 1:
        raise ValueError(f"unroll must be a positive int, got {unroll!r}.")
    return _rk4_scan(f, y0, t0, dt, n_steps, args, unroll)


def rk4_unrolled(
    f: VectorField,
    y0: PyTree,
    t0: ArrayLike,
    dt: ArrayLike,
    n_steps: object,
    args: Any = None,
) -> tuple[Float[Array, " {n_steps}+1"], PyTree]:
    """The same integration as `rk4_scan` with a Python `for` loop (not compiled).

    Under `jax.jit` (with `f` and `n_steps` static) the loop is unrolled into
    `n_steps` copies of the RK4 step: a reference and a demonstration of why
    `jax.lax.scan` exists, not a tool for long integrations.
    """
    _check(n_steps, dt)
    y, ys = y0, [y0]
    for k in range(n_steps):
        y = rk4_step(f, t0 + k * dt, y, dt, args)
        ys.append(y)
    stacked = jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(x) for x in leaves]), *ys)
    return t0 + dt * jnp.arange(n_steps + 1), stacked


def lotka_volterra(
    t: ArrayLike, y: Float[ArrayLike, "2"], args: Float[ArrayLike, "4"]
) -> Float[Array, "2"]:
    """Predator–prey dynamics (Lotka 1925; Volterra 1926).

    `y = (prey, predators)` and `args = (alpha, beta, delta, gamma)`:
    `prey' = alpha*prey - beta*prey*predators` and
    `predators' = delta*prey*predators - gamma*predators`. `t` is unused (autonomous).
    """
    alpha, beta, delta, gamma = args[0], args[1], args[2], args[3]
    prey, predators = y[0], y[1]
    return jnp.stack(
        [alpha * prey - beta * prey * predators, delta * prey * predators - gamma * predators]
    )


def lotka_volterra_invariant(
    y: Float[ArrayLike, "*batch 2"], args: Float[ArrayLike, "4"]
) -> Float[Array, "*batch"]:
    """The quantity `delta*x - gamma*log(x) + beta*y - alpha*log(y)`, constant on exact orbits.

    Works on one state `(2,)` or a trajectory `(..., 2)`; a numerical integrator's drift in
    this quantity measures its error.
    """
    alpha, beta, delta, gamma = args[0], args[1], args[2], args[3]
    prey, predators = y[..., 0], y[..., 1]
    return delta * prey - gamma * jnp.log(prey) + beta * predators - alpha * jnp.log(predators)
