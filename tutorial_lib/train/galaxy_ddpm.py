"""Trainer of the shipped galaxy DDPM: `python -m tutorial_lib.train galaxy-ddpm`.

The run saves its state every few minutes and a later run of the same config resumes it
(`tutorial_lib.train._checkpoint`), so the hours the CPU profile needs can be spread over
several sittings; the metadata's wall time is the sum.

`--steps N` (or `JAXGENAI_TRAIN_STEPS=N`) makes a short smoke run: the config then records N, so
the result is never mistaken for the shipped model, and it is never installed into the package.
"""

import copy
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from tutorial_lib.config import Profile, pick
from tutorial_lib.config import profile as current_profile
from tutorial_lib.diffusion.ddpm import ddpm_loss, init_train_state, make_train_step
from tutorial_lib.diffusion.galaxy import (
    CONFIGS,
    as_noise_predictor,
    augmented_batch,
    build_unet,
    galaxy_split,
    store,
    to_model_space,
)
from tutorial_lib.diffusion.schedule import make_schedule
from tutorial_lib.diffusion.unet import count_parameters
from tutorial_lib.train import TrainResult, parse_steps, register_trainer
from tutorial_lib.train._checkpoint import clear_checkpoint, load_checkpoint, save_checkpoint

__all__ = [
    "NAME",
    "make_config",
    "train",
]

NAME = "galaxy-ddpm"
CHECKPOINT_EVERY_S = 300.0


def make_config(steps: int | None = None, profile: Profile | None = None) -> dict:
    """The recorded config of the size profile (`galaxy.CONFIGS`); `steps` shortens it."""
    config = copy.deepcopy(CONFIGS[profile or current_profile()])
    if steps is not None:
        config["steps"] = parse_steps(steps)
        config["warmup_steps"] = min(config["warmup_steps"], config["steps"] // 10)
    return config


def _heldout_loss(model, schedule, heldout, key, repeats: int = 4) -> float:
    """Noise-prediction MSE of `model` (a noise predictor, whatever its network predicts)."""
    x0 = to_model_space(jnp.asarray(heldout))
    loss = eqx.filter_jit(lambda m, k: ddpm_loss(m, schedule, x0, k, dropout=False))
    return float(np.mean([loss(model, k) for k in jr.split(key, repeats)]))


@register_trainer(
    NAME,
    make_config=make_config,
    description="U-Net DDPM on SDSS Galaxy Zoo images (64x64 on a GPU, 32x32 on a CPU)",
)
def train(config: dict) -> TrainResult:
    split = galaxy_split(config)
    schedule = make_schedule(config["schedule"])
    model = build_unet(config)
    print(
        f"galaxy-ddpm: {count_parameters(model):,} parameters, {len(split.train)} training images, "
        f"{config['steps']} steps on {jax.devices()[0].device_kind}",
        flush=True,
    )

    lr = optax.warmup_cosine_decay_schedule(
        0.0,
        config["learning_rate"],
        config["warmup_steps"],
        config["steps"],
        config["learning_rate"] / 10,
    )
    optimiser = optax.chain(optax.clip_by_global_norm(config["grad_clip"]), optax.adam(lr))
    state = init_train_state(model, optimiser)
    batch = config["batch_size"]
    # On a GPU, 50 steps per call amortise the dispatch; XLA:CPU is fastest one step at a time.
    steps_per_call = pick(cpu=1, gpu=50)
    train_step = make_train_step(
        schedule,
        optimiser,
        lambda k, data: augmented_batch(k, data, batch),
        ema_decay=config["ema_decay"],
        steps_per_call=steps_per_call,
        prediction=config.get("prediction", "eps"),
    )
    data = jnp.asarray(split.train)
    key = jr.key(config["seed"])
    calls = max(1, config["steps"] // steps_per_call)
    history, previous_wall, first, sessions = [], 0.0, 0, 1
    resumed = load_checkpoint(NAME, (state, key), config=config)
    if resumed is not None:
        (state, key), info = resumed
        history, previous_wall = info["extra"]["history"], info["wall_s"]
        sessions = info["extra"]["sessions"] + 1
        first = info["step"] // steps_per_call
        print(f"galaxy-ddpm: resuming at step {info['step']} ({previous_wall:,.0f} s so far)")
    start = compiled = last_save = time.perf_counter()
    for i in range(first, calls):
        key, k = jr.split(key)
        state, loss = train_step(data, state, k)
        if i == first:
            loss.block_until_ready()
            compiled = time.perf_counter()
        if (i + 1) % max(1, calls // 40) == 0 or i == calls - 1:
            history.append([int(state.step), float(loss)])
            rate = ((i - first) * steps_per_call * batch) / max(
                time.perf_counter() - compiled, 1e-9
            )
            print(
                f"  step {int(state.step):>6}  loss {float(loss):.4f}  {rate:,.0f} img/s",
                flush=True,
            )
        if time.perf_counter() - last_save > CHECKPOINT_EVERY_S and i < calls - 1:
            wall = previous_wall + time.perf_counter() - start
            save_checkpoint(
                NAME,
                (state, key),
                config=config,
                step=int(state.step),
                wall_s=wall,
                extra={"history": history, "sessions": sessions},
            )
            last_save = time.perf_counter()
    jax.block_until_ready(state)
    seconds = time.perf_counter() - compiled
    images_per_s = (calls - 1 - first) * steps_per_call * batch / max(seconds, 1e-9)

    ema = as_noise_predictor(state.ema, config)
    k_eval = jr.split(jr.key(config["seed"] + 1))[0]
    heldout = _heldout_loss(ema, schedule, split.heldout, k_eval)
    train_loss = _heldout_loss(ema, schedule, split.train[: len(split.heldout)], k_eval)

    ref = config["reference_samples"]
    from tutorial_lib.diffusion.galaxy import GalaxyDDPM

    shipped = store(state.ema)
    sampler_model = jax.tree.map(
        lambda x: x.astype(jnp.float32) if eqx.is_inexact_array(x) else x, shipped
    )
    t0 = time.perf_counter()
    sampler_model = as_noise_predictor(sampler_model, config)
    # No reference samples yet: these are them. An empty (0, s, s, 3) stack keeps the shape.
    none_yet = np.zeros((0, config["image_size"], config["image_size"], 3), np.float32)
    samples = GalaxyDDPM(sampler_model, schedule, none_yet, {}).sample(
        jr.key(ref["seed"]), ref["n"], sampler=ref["sampler"], steps=ref["steps"]
    )
    samples = np.asarray(jnp.round(samples * 255), dtype=np.uint8)
    sample_s = time.perf_counter() - t0
    print(
        f"galaxy-ddpm: held-out loss {heldout:.4f} (train {train_loss:.4f}); "
        f"{images_per_s:,.0f} img/s; {ref['n']} reference samples in {sample_s:.1f} s",
        flush=True,
    )
    clear_checkpoint(NAME)
    return TrainResult(
        previous_wall_s=previous_wall,
        tree={"model": shipped, "reference_samples": samples},
        config=config,
        data={
            "dataset": config["data"]["source"],
            "images_sha256": split.data_sha256,
            "n_train": len(split.train),
            "n_heldout": len(split.heldout),
            "heldout_ids": split.heldout_ids,
        },
        metrics={
            "parameters": count_parameters(model),
            "final_train_loss": history[-1][1],
            "heldout_eps_mse": heldout,
            "train_eps_mse_same_size": train_loss,
            "train_images_per_s": round(images_per_s, 1),
            "compile_s": round(compiled - start, 1),
            "sessions": sessions,
            "reference_sampling_s": round(sample_s, 1),
            "loss_history": history,
        },
    )
