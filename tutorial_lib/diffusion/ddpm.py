"""DDPM training and three samplers that share one noise-prediction network.

- `ddpm_loss`: the epsilon-prediction objective of Ho et al. (2020), with t ~ U(t_min, 1), or
  its v-prediction form (Salimans and Ho 2022); `VPrediction` turns a v-network into a noise
  predictor, so the samplers below take either.
- `ancestral_sample`: DDPM's stochastic reverse chain on any grid of times.
- `ddim_sample`: DDIM (Song, Meng and Ermon 2021); `eta=0` is deterministic.
- `ode_sample`: the probability-flow ODE (Song et al. 2021) solved by Diffrax's adaptive Tsit5.
- Their shared steps, also used by `tutorial_lib.diffusion.inverse`: `batched_eps` (the network
  on a batch at one time), `predict_x0` (Tweedie's clean-image estimate) and `ancestral_update`
  (one draw from DDPM's posterior q(x_s | x_t, x0)).

Images are channels first, `(C, H, W)`, in [-1, 1]. The network is any callable
`eps(x, t, *, key=None)` on one image; batching is `jax.vmap`.
"""

import numbers
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from tutorial_lib.diffusion.schedule import NoiseSchedule

__all__ = [
    "PREDICTIONS",
    "SAMPLERS",
    "T_MIN",
    "EpsModel",
    "Prediction",
    "SampleResult",
    "TrainState",
    "VPrediction",
    "ancestral_sample",
    "ancestral_update",
    "batched_eps",
    "ddim_sample",
    "ddpm_loss",
    "ema_update",
    "init_train_state",
    "make_train_step",
    "ode_sample",
    "predict_x0",
    "time_grid",
]

EpsModel = Callable[..., Float[Array, "c h w"]]
Prediction = Literal["eps", "v"]
"""The network targets `ddpm_loss` and `make_train_step` know; they take `prediction` as any
`str` and raise a `ValueError` for another one."""
T_MIN = 1e-3
PREDICTIONS = ("eps", "v")


def _check_prediction(prediction):
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def ddpm_loss(
    model: EpsModel,
    schedule: NoiseSchedule,
    x0: Float[Array, "batch c h w"],
    key: PRNGKeyArray,
    *,
    dropout: bool = True,
    prediction: str = "eps",
    labels: Int[Array, " batch"] | None = None,
) -> Float[Array, ""]:
    """Mean squared error of the network's prediction, t ~ U(T_MIN, 1).

    `prediction="eps"`: the network predicts the noise (Ho et al. 2020). `prediction="v"`: it
    predicts v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans and Ho 2022), which stays well
    scaled at high noise, where recovering x0 from a predicted eps divides its error by
    sqrt(abar) ~ 0. Wrap a v-network in `VPrediction` to sample with it.

    `labels` (one per image) makes it a class-conditional loss: the network is then called as
    `model(x, t, label, key=...)`.
    """
    _check_prediction(prediction)
    n = x0.shape[0]
    k_t, k_eps, k_drop = jr.split(key, 3)
    # Stratified times: one per sub-interval, which lowers the variance of the loss.
    t = T_MIN + (1 - T_MIN) * (jnp.arange(n) + jr.uniform(k_t, (n,))) / n
    eps = jr.normal(k_eps, x0.shape)
    xt = jax.vmap(schedule.add_noise)(x0, eps, t)
    keys = jr.split(k_drop, n) if dropout else None
    if labels is None:
        pred = jax.vmap(lambda x, s, k: model(x, s, key=k))(xt, t, keys)
    else:
        pred = jax.vmap(lambda x, s, c, k: model(x, s, c, key=k))(xt, t, labels, keys)
    if prediction == "eps":
        target = eps
    else:
        a, s = jax.vmap(schedule.signal_and_noise)(t)
        target = a[:, None, None, None] * eps - s[:, None, None, None] * x0
    return jnp.mean((pred - target) ** 2)


class VPrediction(eqx.Module):
    """A v-predicting network seen as a noise predictor: eps = sqrt(1 - abar) x + sqrt(abar) v.

    From x_t = a x0 + s eps and v = a eps - s x0 (with a^2 + s^2 = 1) follow eps = s x_t + a v
    and x0 = a x_t - s v, so every sampler written for noise predictors takes this module.
    """

    net: eqx.Module
    schedule: NoiseSchedule

    @property
    def image_size(self) -> int:
        return self.net.image_size

    @property
    def channels(self) -> int:
        return self.net.channels

    def __call__(
        self, x: Float[Array, "c h w"], t: Float[Array, ""], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "c h w"]:
        a, s = self.schedule.signal_and_noise(t)
        return s * x + a * self.net(x, t, key=key)


def ema_update(ema: PyTree, model: PyTree, decay: float | Array) -> PyTree:
    """Exponential moving average of the parameters (Polyak averaging)."""
    ema_p, static = eqx.partition(ema, eqx.is_inexact_array)
    new_p = eqx.filter(model, eqx.is_inexact_array)
    mixed = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, ema_p, new_p)
    return eqx.combine(mixed, static)


class TrainState(eqx.Module):
    model: eqx.Module
    ema: eqx.Module
    opt_state: PyTree
    step: Array


def init_train_state(model: eqx.Module, optimiser: optax.GradientTransformation) -> TrainState:
    # The train step donates the state's buffers, so the state holds copies: the caller's
    # `model` stays usable, and the average does not share buffers with the weights.
    def copy(tree):
        return jax.tree.map(lambda x: jnp.array(x, copy=True) if eqx.is_array(x) else x, tree)

    return TrainState(
        copy(model),
        copy(model),
        optimiser.init(eqx.filter(model, eqx.is_inexact_array)),
        jnp.array(0),
    )


def make_train_step(
    schedule: NoiseSchedule,
    optimiser: optax.GradientTransformation,
    prepare: Callable[[PRNGKeyArray, Array], Float[Array, "batch c h w"]],
    *,
    ema_decay: float = 0.999,
    steps_per_call: int = 1,
    prediction: str = "eps",
):
    """A jitted `train_step(data, state, key) -> (state, mean_loss)` running `steps_per_call`
    optimiser steps under `lax.scan`. `prepare(key, data)` draws and augments one batch;
    `prediction` is the network's target (see `ddpm_loss`). Buffers of `state` are donated,
    so its memory is reused in place. A `prepare` that returns `(images, labels)` trains a
    class-conditional network (see `ddpm_loss`)."""
    _check_prediction(prediction)

    def one_step(data, state: TrainState, key):
        k_batch, k_loss = jr.split(key)
        batch = prepare(k_batch, data)
        x0, labels = batch if isinstance(batch, tuple) else (batch, None)
        loss, grads = eqx.filter_value_and_grad(ddpm_loss)(
            state.model, schedule, x0, k_loss, prediction=prediction, labels=labels
        )
        params = eqx.filter(state.model, eqx.is_inexact_array)
        updates, opt_state = optimiser.update(grads, state.opt_state, params)
        model = eqx.apply_updates(state.model, updates)
        # Warm the average up: early on, an average over the random init is useless.
        decay = jnp.minimum(ema_decay, (1.0 + state.step) / (10.0 + state.step))
        ema = ema_update(state.ema, model, decay)
        return TrainState(model, ema, opt_state, state.step + 1), loss

    if steps_per_call == 1:
        # XLA:CPU runs the gradients of convolutions inside a loop (`scan`) more than ten
        # times slower than outside one, so a single step is compiled without the loop.
        @eqx.filter_jit(donate="all-except-first")
        def single_step(data, state: TrainState, key):
            return one_step(data, state, key)

        return single_step

    @eqx.filter_jit(donate="all-except-first")
    def train_step(data, state: TrainState, key):
        # Only arrays may ride in a scan carry; static leaves (flags, activations) stay outside.
        arrays, static = eqx.partition(state, eqx.is_array)

        def body(a, k):
            new_state, loss = one_step(data, eqx.combine(a, static), k)
            return eqx.filter(new_state, eqx.is_array), loss

        arrays, losses = jax.lax.scan(body, arrays, jr.split(key, steps_per_call))
        return eqx.combine(arrays, static), jnp.mean(losses)

    return train_step


# ----- samplers ------------------------------------------------------------------------


class SampleResult(NamedTuple):
    images: Float[Array, "n c h w"]
    nfe: int | Array  # network evaluations per image
    trajectory: Float[Array, "k n c h w"] | None = None  # x0 predictions along the way


def _positive_int(name: str, value: Any, meaning: str) -> int:
    """`value` as an int (NumPy integers too); bools, floats, None, text and values < 1 fail."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1:
        return int(value)
    raise ValueError(
        f"{name} must be a positive int ({meaning}), got {value!r} ({type(value).__name__})"
    )


def _check_steps(steps: Any) -> Any:
    if isinstance(steps, jax.core.Tracer):  # a traced count: the loop's trip count is dynamic
        return steps
    return _positive_int("steps", steps, "need at least one sampling step")


def time_grid(steps: int, t_max: float = 1.0) -> Float[Array, " {steps}+1"]:
    """`steps + 1` times from t_max down to 0 (uniform in t)."""
    return jnp.linspace(t_max, 0.0, _check_steps(steps) + 1)


def batched_eps(model: EpsModel) -> Callable[[Float[Array, "n c h w"], Float[Array, ""]], Array]:
    """The noise predictor on a batch of images at one shared time: `eps_fn(x, t)` with x of
    shape `(n, c, h, w)` (no dropout key: the network as used for sampling)."""
    return jax.vmap(lambda x, t: model(x, t), in_axes=(0, None))


def predict_x0(
    schedule: NoiseSchedule,
    eps_fn: Callable[[Array, Array], Array],
    x: Float[Array, "*shape"],
    t: Float[Array, ""],
    clip: bool,
) -> tuple[Float[Array, "*shape"], Float[Array, "*shape"]]:
    """Tweedie's estimate of the clean image, x0_hat = (x_t - sqrt(1 - abar) eps_hat) /
    sqrt(abar), and the predicted noise. With `clip`, x0_hat is clipped to [-1, 1] and the noise
    recomputed to match it."""
    a, s = schedule.signal_and_noise(t)
    eps = eps_fn(x, t)
    x0 = (x - s * eps) / a
    if clip:
        x0 = jnp.clip(x0, -1.0, 1.0)
        eps = (x - a * x0) / s
    return x0, eps


def _check_shape(shape):
    if len(shape) != 3:
        raise ValueError(f"image shape must be (channels, height, width), got {shape}")


def ancestral_update(
    schedule: NoiseSchedule,
    x: Float[Array, "*shape"],
    x0: Float[Array, "*shape"],
    t: Float[Array, ""],
    s: Float[Array, ""],
    key: PRNGKeyArray,
) -> Float[Array, "*shape"]:
    """One step of DDPM's reverse chain, from x_t = `x` at time t to a draw of x_s (s < t) from
    the Gaussian posterior q(x_s | x_t, x0) given the clean-image estimate `x0`."""
    log_at, log_as = schedule.log_alpha_bar(t), schedule.log_alpha_bar(s)
    alpha = jnp.exp(log_at - log_as)  # abar_t / abar_s
    one_m_at, one_m_as = -jnp.expm1(log_at), jnp.maximum(-jnp.expm1(log_as), 0.0)
    mean = (jnp.exp(0.5 * log_as) * (1 - alpha) * x0 + jnp.sqrt(alpha) * one_m_as * x) / one_m_at
    var = one_m_as / one_m_at * (1 - alpha)
    return mean + jnp.sqrt(var) * jr.normal(key, x.shape)


def _ancestral_step(model, schedule, clip, x, inputs):
    t, s, k = inputs
    x0, _ = predict_x0(schedule, batched_eps(model), x, t, clip)
    return ancestral_update(schedule, x, x0, t, s, k), x0


def _ddim_step(model, schedule, eta, clip, x, inputs):
    t, s, k = inputs
    log_at, log_as = schedule.log_alpha_bar(t), schedule.log_alpha_bar(s)
    x0, eps = predict_x0(schedule, batched_eps(model), x, t, clip)
    one_m_at, one_m_as = -jnp.expm1(log_at), jnp.maximum(-jnp.expm1(log_as), 0.0)
    sigma = eta * jnp.sqrt(one_m_as / one_m_at * -jnp.expm1(log_at - log_as))
    direction = jnp.sqrt(jnp.maximum(one_m_as - sigma**2, 0.0)) * eps
    return jnp.exp(0.5 * log_as) * x0 + direction + sigma * jr.normal(k, x.shape), x0


def _reverse_loop(step, static_args: tuple, x, steps, key, keep: int):
    """Apply `step` down the uniform grid t_i = 1 - i / steps, i = 0 .. steps - 1.

    `steps` may be traced: the loop is a `fori_loop` with a dynamic trip count, so sampling
    with 10 or 100 steps reuses one compilation. Returns x and, when `keep > 0`, the x0
    predictions at `keep` evenly spaced steps (else None).
    """
    slots = jnp.round(jnp.linspace(0.0, steps - 1.0, max(keep, 1))).astype(int)
    kept = jnp.zeros((max(keep, 1) if keep > 0 else 0, *x.shape), x.dtype)

    def body(i, carry):
        x, kept = carry
        t, s = 1.0 - i / steps, 1.0 - (i + 1) / steps
        x, x0 = step(*static_args, x, (t, jnp.maximum(s, 0.0), jr.fold_in(key, i)))
        if keep > 0:
            hit = (slots == i)[:, None, None, None, None]
            kept = jnp.where(hit, x0[None], kept)
        return x, kept

    x, kept = jax.lax.fori_loop(0, steps, body, (x, kept))
    return x, (kept if keep > 0 else None)


def ancestral_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    key: PRNGKeyArray,
    n: object,
    shape: tuple[int, ...],
    *,
    steps: object = 1000,
    clip: bool = True,
    keep: int = 0,
) -> SampleResult:
    """DDPM's reverse chain x_t -> x_s through the Gaussian posterior q(x_s | x_t, x0_hat).

    `keep > 0` also returns `keep` evenly spaced x0 predictions (the denoising trajectory).
    `n` images of `shape = (channels, height, width)` are drawn; `n` and `steps` are positive
    ints (NumPy integers too, and `steps` may be traced), anything else a `ValueError`.
    """
    _check_shape(shape)
    n, steps = _positive_int("n", n, "the number of samples"), _check_steps(steps)
    result = _ancestral_sample(model, schedule, key, n, shape, jnp.asarray(steps), clip, keep)
    return result._replace(nfe=steps)


@eqx.filter_jit
def _ancestral_sample(model, schedule, key, n, shape, steps, clip, keep):
    k0, k_steps = jr.split(key)
    x = jr.normal(k0, (n, *shape))
    x, x0s = _reverse_loop(_ancestral_step, (model, schedule, clip), x, steps, k_steps, keep)
    return SampleResult(x, steps, x0s)


def ddim_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    key: PRNGKeyArray,
    n: object,
    shape: tuple[int, ...],
    *,
    steps: object = 50,
    eta: float = 0.0,
    clip: bool = True,
    keep: int = 0,
    x_init: Float[Array, "n c h w"] | None = None,
) -> SampleResult:
    """DDIM: x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z.

    `eta=0` is deterministic (an Euler step of the probability-flow ODE in the variables
    x / sqrt(abar) and sqrt((1 - abar) / abar)); `eta=1` matches DDPM's posterior variance.
    `n`, `shape` and `steps` are checked as in `ancestral_sample`.
    """
    _check_shape(shape)
    n, steps = _positive_int("n", n, "the number of samples"), _check_steps(steps)
    args = (jnp.asarray(steps), jnp.asarray(eta, jnp.float32), clip, keep)
    result = _ddim_sample(model, schedule, key, n, shape, *args, x_init)
    return result._replace(nfe=steps)


@eqx.filter_jit
def _ddim_sample(model, schedule, key, n, shape, steps, eta, clip, keep, x_init):
    k0, k_steps = jr.split(key)
    x = jr.normal(k0, (n, *shape)) if x_init is None else x_init
    x, x0s = _reverse_loop(_ddim_step, (model, schedule, eta, clip), x, steps, k_steps, keep)
    return SampleResult(x, steps, x0s)


def _ode_vector_field(model, schedule):
    """dy/du for u = -log sigma_bar (increasing) and y = x / sqrt(abar)."""
    eps_fn = batched_eps(model)

    def vector_field(u, y, args):
        sigma_bar = jnp.exp(-u)
        t = schedule.time_of_noise_to_signal(sigma_bar)
        a, _ = schedule.signal_and_noise(t)
        return -sigma_bar * eps_fn(a * y, t)

    return diffrax.ODETerm(vector_field)


def ode_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    key: PRNGKeyArray,
    n: object,
    shape: tuple[int, ...],
    *,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    t_end: float = T_MIN,
    clip: bool = True,
    x_init: Float[Array, "n c h w"] | None = None,
    max_steps: int = 4096,
) -> SampleResult:
    """Probability-flow ODE with Diffrax's adaptive Tsit5.

    In y = x / sqrt(abar) and u = -log sigma_bar the ODE is dy/du = -sigma_bar * eps(x, t):
    smooth and free of the stiff drift term, so an adaptive solver takes few steps. The
    solve runs from t=1 to `t_end`, then one last x0 prediction denoises the result.
    `n` and `shape` are checked as in `ancestral_sample`.
    """
    _check_shape(shape)
    n = _positive_int("n", n, "the number of samples")
    # Tolerances as arrays, so that a new tolerance needs no new compilation.
    tolerances = jnp.asarray(rtol, jnp.float32), jnp.asarray(atol, jnp.float32)
    return _ode_sample(model, schedule, key, n, shape, *tolerances, t_end, clip, x_init, max_steps)


@eqx.filter_jit
def _ode_sample(model, schedule, key, n, shape, rtol, atol, t_end, clip, x_init, max_steps):
    x = jr.normal(key, (n, *shape)) if x_init is None else x_init
    u0 = -jnp.log(schedule.noise_to_signal(1.0))
    u1 = -jnp.log(schedule.noise_to_signal(t_end))
    a0, _ = schedule.signal_and_noise(1.0)
    y0 = x / a0
    sol = diffrax.diffeqsolve(
        _ode_vector_field(model, schedule),
        diffrax.Tsit5(),
        t0=u0,
        t1=u1,
        dt0=(u1 - u0) / 20,
        y0=y0,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    y_end, attempts = sol.ys[-1], sol.stats["num_steps"]
    a1, _ = schedule.signal_and_noise(t_end)
    x0, _ = predict_x0(schedule, batched_eps(model), a1 * y_end, jnp.asarray(t_end), clip)
    # Tsit5 is first-same-as-last: 6 new evaluations per step, one at the start, one to denoise.
    nfe = 6 * attempts + 2
    return SampleResult(x0, nfe)


SAMPLERS = {"ddpm": ancestral_sample, "ddim": ddim_sample, "ode": ode_sample}
