r"""A neural ODE (Chen et al. 2018) trained end to end through Diffrax, in Kidger's style.

The model is $\dot y = f_\theta(y)$ with $f_\theta$ a small MLP; a prediction is
the ODE solution from an observed initial state, computed by an adaptive `Tsit5` solve, and
training backpropagates through the solver (Kidger 2021, chapter 2). The data are noisy
measurements of a damped pendulum, `pendulum_data`.

- `VectorField`, `NeuralODE`: Equinox modules (pytrees of parameters).
- `predict`: compiled trajectories from many initial states.
- `loss`: mean squared error of the predicted trajectories, one solve per trajectory
  under `jax.vmap`.
- `make_optimiser`, `train_step`, `train`: Optax Adam with warm-up, cosine
  decay and gradient clipping; one compiled step, reused for every call with the same
  hyperparameters.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

__all__ = [
    "NeuralODE",
    "VectorField",
    "damped_pendulum",
    "loss",
    "make_optimiser",
    "pendulum_data",
    "predict",
    "train",
    "train_step",
]


def damped_pendulum(
    t: Float[Array, ""], y: Float[Array, "2"], damping: float | Float[Array, ""]
) -> Float[Array, "2"]:
    """Angle and angular velocity of a pendulum with friction (time in units of sqrt(L/g))."""
    angle, velocity = y
    return jnp.stack([velocity, -jnp.sin(angle) - damping * velocity])


def pendulum_data(
    key: PRNGKeyArray,
    n: int,
    ts: Float[Array, " times"],
    *,
    noise: float = 0.02,
    damping: float = 0.25,
) -> tuple[Float[Array, "n times 2"], Float[Array, "n times 2"]]:
    """`n` pendulum trajectories saved at `ts`: (exact, observed with Gaussian noise).

    Initial angles are uniform in [-2, 2] rad and velocities in [-1, 1], so the pendulum
    swings back and forth and never goes over the top.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of trajectories, got {n}.")
    init_key, noise_key = jr.split(key)
    y0 = jr.uniform(init_key, (n, 2), minval=jnp.array([-2.0, -1.0]), maxval=jnp.array([2.0, 1.0]))

    def solve(y):
        return diffrax.diffeqsolve(
            diffrax.ODETerm(damped_pendulum),
            diffrax.Tsit5(),
            ts[0],
            ts[-1],
            None,
            y,
            args=damping,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6),
            max_steps=1024,
        ).ys

    exact = jax.jit(jax.vmap(solve))(y0)
    return exact, exact + noise * jr.normal(noise_key, exact.shape)


class VectorField(eqx.Module):
    r"""$f_\theta(y)$: an MLP with softplus activations (smooth, so the solver is happy)."""

    mlp: eqx.nn.MLP

    def __init__(self, dim: int = 2, width: int = 64, depth: int = 2, *, key: PRNGKeyArray):
        self.mlp = eqx.nn.MLP(dim, dim, width, depth, activation=jax.nn.softplus, key=key)

    def __call__(
        self, t: float | Float[Array, ""], y: Float[Array, " d"], args=None
    ) -> Float[Array, " d"]:
        return self.mlp(y)


class NeuralODE(eqx.Module):
    r"""Solve $\dot y = f_\theta(y)$ from `y0` and return the states at `ts`."""

    vector_field: VectorField
    rtol: float = eqx.field(static=True, default=1e-3)
    atol: float = eqx.field(static=True, default=1e-6)
    max_steps: int = eqx.field(static=True, default=256)

    def __call__(
        self, ts: Float[Array, " times"], y0: Float[Array, " d"]
    ) -> Float[Array, "times d"]:
        return diffrax.diffeqsolve(
            diffrax.ODETerm(self.vector_field),
            diffrax.Tsit5(),
            t0=ts[0],
            t1=ts[-1],
            dt0=ts[1] - ts[0],
            y0=y0,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=self.rtol, atol=self.atol),
            max_steps=self.max_steps,
        ).ys


@eqx.filter_jit
def predict(
    model: NeuralODE, ts: Float[Array, " times"], y0s: Float[Array, "n d"]
) -> Float[Array, "n times d"]:
    """Trajectories from many initial states at once (compiled; `vmap` over `y0s`)."""
    return jax.vmap(model, in_axes=(None, 0))(ts, y0s)


def loss(
    model: NeuralODE, ts: Float[Array, " times"], ys: Float[Array, "n times d"]
) -> Float[Array, ""]:
    """Mean squared error of trajectories predicted from each observed initial state."""
    predicted = jax.vmap(model, in_axes=(None, 0))(ts, ys[:, 0])
    return jnp.mean((predicted - ys) ** 2)


def make_optimiser(steps: int, peak_lr: float = 1e-2) -> optax.GradientTransformation:
    """Clip the gradient norm to 1, then AdamW with a linear warm-up and a cosine decay."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak_lr,
        warmup_steps=max(1, steps // 20),
        decay_steps=steps,
        end_value=peak_lr / 100,
    )
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=1e-4))


@eqx.filter_jit
def train_step(
    model: NeuralODE,
    opt_state: PyTree,
    ts: Float[Array, " times"],
    ys: Float[Array, "n times d"],
    steps: int,
    peak_lr: float,
) -> tuple[NeuralODE, PyTree, Float[Array, ""]]:
    """One optimiser step on the whole batch. `steps` and `peak_lr` are static (Python
    numbers), so the optimiser can be rebuilt here and the compiled step reused."""
    value, grads = eqx.filter_value_and_grad(loss)(model, ts, ys)
    updates, opt_state = make_optimiser(steps, peak_lr).update(
        grads, opt_state, eqx.filter(model, eqx.is_array)
    )
    return eqx.apply_updates(model, updates), opt_state, value


def train(
    model: NeuralODE,
    ts: Float[Array, " times"],
    ys: Float[Array, "..."],
    *,
    steps: int,
    peak_lr: float = 1e-2,
) -> tuple[NeuralODE, Float[np.ndarray, " {steps}"]]:
    """Full-batch training for `steps` steps; returns the trained model and the loss curve.

    `ys` holds the observed trajectories, `(n, len(ts), d)`; a `ValueError` says so when its
    shape does not fit `ts`.
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}.")
    if ys.ndim != 3 or ys.shape[1] != len(ts):
        raise ValueError(
            f"ys must have shape (trajectories, len(ts)={len(ts)}, state), got {ys.shape}."
        )
    opt_state = make_optimiser(steps, peak_lr).init(eqx.filter(model, eqx.is_array))
    losses = []
    for _ in range(steps):
        model, opt_state, value = train_step(model, opt_state, ts, ys, steps, peak_lr)
        losses.append(value)
    return model, np.asarray(jnp.stack(losses))
