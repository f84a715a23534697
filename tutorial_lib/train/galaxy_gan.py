"""Trainer of the shipped galaxy GAN: `python -m tutorial_lib.train galaxy-gan`.

A DCGAN-style generator and critic (`tutorial_lib.generative.gan`) on the galaxy DDPM's
training split, augmented with the 8 symmetries of the square, trained with the
non-saturating loss and an R1 penalty on real galaxies; the shipped generator is the moving
average of its weights. Resumable; `--steps N` makes a smoke run that is never installed.
"""

import copy
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import optax

from tutorial_lib.config import Profile
from tutorial_lib.config import profile as current_profile
from tutorial_lib.data import random_dihedral
from tutorial_lib.diffusion.galaxy import to_model_space
from tutorial_lib.diffusion.unet import count_parameters
from tutorial_lib.generative.galaxies import labelled_split
from tutorial_lib.generative.gan import init_gan_state, make_gan_step
from tutorial_lib.generative.models import GAN_CONFIGS, GalaxyGAN, build_gan
from tutorial_lib.train import TrainResult, parse_steps, register_trainer
from tutorial_lib.train._checkpoint import clear_checkpoint, load_checkpoint, save_checkpoint

__all__ = ["NAME", "make_config", "train"]

NAME = "galaxy-gan"
CHECKPOINT_EVERY_S = 300.0


def make_config(steps: int | None = None, profile: Profile | None = None) -> dict:
    config = copy.deepcopy(GAN_CONFIGS[profile or current_profile()])
    if steps is not None:
        config["steps"] = parse_steps(steps)
    return config


@register_trainer(
    NAME,
    make_config=make_config,
    description="DCGAN-style GAN (non-saturating loss + R1) on 32x32 SDSS galaxies",
)
def train(config: dict) -> TrainResult:
    split = labelled_split(config["image_size"], config["data"])
    generator, critic = build_gan(config)
    batch = config["batch_size"]
    print(
        f"{NAME}: generator {count_parameters(generator):,} and critic "
        f"{count_parameters(critic):,} parameters; {len(split.train)} training galaxies, "
        f"{config['steps']} steps",
        flush=True,
    )

    def adam():
        return optax.adam(config["learning_rate"], b1=config["adam_b1"], b2=config["adam_b2"])

    def sample_real(key, data):
        k_idx, k_sym = jr.split(key)
        idx = jr.randint(k_idx, (batch,), 0, data.shape[0])
        return to_model_space(random_dihedral(k_sym, data[idx]))

    g_opt, d_opt = adam(), adam()
    step = make_gan_step(
        sample_real, config["gan"]["latent_dim"], batch, g_opt, d_opt,
        loss=config["loss"], penalty=config["penalty"], critic_steps=config["critic_steps"],
        ema_decay=config["ema_decay"],
    )  # fmt: skip
    state = init_gan_state(generator, critic, g_opt, d_opt)
    data = jnp.asarray(split.train)
    key = jr.key(config["seed"])
    history, previous_wall, first, sessions = [], 0.0, 0, 1
    resumed = load_checkpoint(NAME, (state, key), config=config)
    if resumed is not None:
        (state, key), info = resumed
        history, previous_wall = info["extra"]["history"], info["wall_s"]
        sessions, first = info["extra"]["sessions"] + 1, info["step"]
        print(f"{NAME}: resuming at step {first} ({previous_wall:,.0f} s so far)", flush=True)
    steps = config["steps"]
    start = compiled = last_save = time.perf_counter()
    for i in range(first, steps):
        key, k = jr.split(key)
        state, (d_loss, g_loss) = step(data, state, k)
        if i == first:
            g_loss.block_until_ready()
            compiled = time.perf_counter()
        if (i + 1) % max(1, steps // 60) == 0 or i == steps - 1:
            history.append([i + 1, float(d_loss), float(g_loss)])
            print(
                f"  step {i + 1:>6}  critic {float(d_loss):.3f}  generator {float(g_loss):.3f}",
                flush=True,
            )
        if time.perf_counter() - last_save > CHECKPOINT_EVERY_S and i < steps - 1:
            save_checkpoint(
                NAME, (state, key), config=config, step=i + 1,
                wall_s=previous_wall + time.perf_counter() - start,
                extra={"history": history, "sessions": sessions},
            )  # fmt: skip
            last_save = time.perf_counter()
    jax.block_until_ready(state)
    seconds = time.perf_counter() - compiled
    images_per_s = (steps - first - 1) * batch / max(seconds, 1e-9)

    shipped = state.ema_generator
    gan = GalaxyGAN(shipped, {})
    gan.sample(jr.key(1), 64).block_until_ready()  # compile
    t0 = time.perf_counter()
    gan.sample(jr.key(2), 64).block_until_ready()
    sample_s = time.perf_counter() - t0
    clear_checkpoint(NAME)
    return TrainResult(
        previous_wall_s=previous_wall,
        tree=shipped,
        config=config,
        data={
            "dataset": config["data"]["source"],
            "images_sha256": split.data_sha256,
            "n_train": len(split.train),
            "n_heldout": len(split.heldout),
            "heldout_ids": split.heldout_ids,
        },
        metrics={
            "generator_parameters": count_parameters(generator),
            "critic_parameters": count_parameters(critic),
            "train_images_per_s": round(images_per_s, 1),
            "compile_s": round(compiled - start, 1),
            "sample_64_s": round(sample_s, 4),
            "sessions": sessions,
            "loss_history": history,
        },
    )
