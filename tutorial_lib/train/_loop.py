"""The training loop the Part IV trainers share: Adam with warm-up and cosine decay, gradient
clipping, a resumable checkpoint every few minutes, a loss history."""

import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import PyTree

from tutorial_lib.train._checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_EVERY_S = 300.0


def optimiser(config: dict[str, Any]) -> optax.GradientTransformation:
    lr = optax.warmup_cosine_decay_schedule(
        0.0,
        config["learning_rate"],
        min(config["warmup_steps"], config["steps"] // 10),
        config["steps"],
        config["learning_rate"] / 10,
    )
    return optax.chain(optax.clip_by_global_norm(config["grad_clip"]), optax.adam(lr))


def fit(
    name: str,
    config: dict[str, Any],
    model: PyTree,
    loss: Callable[[PyTree, jax.Array, jax.Array], jax.Array],
    data: jax.Array,
    *,
    seed: int,
    label: str = "",
) -> tuple[PyTree, dict[str, Any]]:
    """Minimise `loss(model, data, key)` for `config["steps"]` steps; returns the model and
    `{"history", "wall_s", "previous_wall_s", "sessions", "images_per_s", "compile_s"}`
    (`previous_wall_s`: the wall time of earlier sessions of a resumed run).

    The state is checkpointed under `name` every few minutes and resumed by the next run of
    the same config; a finished run stays checkpointed (so a trainer fitting several models
    skips the ones done) until the trainer clears it.
    """
    opt = optimiser(config)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    state = (params, opt.init(params), jnp.array(0), jr.key(seed))
    history, previous_wall, sessions = [], 0.0, 1
    resumed = load_checkpoint(name, state, config=config)
    if resumed is not None:
        state, info = resumed
        history, previous_wall = info["extra"]["history"], info["wall_s"]
        sessions = info["extra"]["sessions"] + 1
        print(
            f"{name}: resuming at step {info['step']} ({previous_wall:,.0f} s so far)", flush=True
        )

    @eqx.filter_jit(donate="all-except-first")
    def step(data, state):
        params, opt_state, i, key = state
        key, k = jr.split(key)
        value, grads = jax.value_and_grad(lambda p: loss(eqx.combine(p, static), data, k))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, i + 1, key), value

    steps, first = config["steps"], int(state[2])
    start = compiled = last_save = time.perf_counter()
    every = max(1, steps // 50)
    for i in range(first, steps):
        state, value = step(data, state)
        if i == first:
            value.block_until_ready()
            compiled = time.perf_counter()
        if (i + 1) % every == 0 or i == steps - 1:
            history.append([i + 1, float(value)])
            print(f"  {label}step {i + 1:>6}  loss {float(value):.4f}", flush=True)
        if time.perf_counter() - last_save > CHECKPOINT_EVERY_S or i == steps - 1:
            wall = previous_wall + time.perf_counter() - start
            extra = {"history": history, "sessions": sessions}
            save_checkpoint(name, state, config=config, step=i + 1, wall_s=wall, extra=extra)
            last_save = time.perf_counter()
    jax.block_until_ready(state)
    seconds = time.perf_counter() - compiled
    done = max(steps - first - 1, 0)
    return eqx.combine(state[0], static), {
        "history": history,
        "wall_s": previous_wall + time.perf_counter() - start,
        "previous_wall_s": previous_wall,
        "sessions": sessions,
        "images_per_s": round(done * config["batch_size"] / seconds, 1) if done else None,
        "compile_s": round(compiled - start, 1),
    }
