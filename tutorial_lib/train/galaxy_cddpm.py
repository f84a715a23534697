"""Trainer of the shipped class-conditional galaxy DDPM: `python -m tutorial_lib.train
galaxy-cddpm`.

Fine-tuned from the shipped galaxy DDPM (the CPU cannot afford another 80-minute run from
scratch): the same U-Net gains a label embedding that starts at zero
(`tutorial_lib.generative.conditional.ConditionalUNet`), so training starts from the
unconditional model and learns what the Galaxy Zoo label (spiral or not) changes, with label
dropout so that one network is both the conditional and the unconditional model
(classifier-free guidance). Same training galaxies, same augmentation and loss as the DDPM.

After training it draws the reference samples the pages use (a guidance sweep for each label:
sampling with guidance costs two network calls per step, too slow for a page on a CPU).
Resumable; `--steps N` makes a smoke run that is never installed.
"""

import copy
import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from tutorial_lib.config import Profile
from tutorial_lib.config import profile as current_profile
from tutorial_lib.data import random_dihedral
from tutorial_lib.diffusion.ddpm import ddpm_loss, init_train_state, make_train_step
from tutorial_lib.diffusion.galaxy import restore, store, to_model_space
from tutorial_lib.diffusion.schedule import make_schedule
from tutorial_lib.diffusion.unet import count_parameters
from tutorial_lib.generative.conditional import ConditionalUNet, drop_labels
from tutorial_lib.generative.galaxies import labelled_split
from tutorial_lib.generative.models import CDDPM_CONFIGS, GalaxyCDDPM
from tutorial_lib.train import TrainResult, parse_steps, register_trainer
from tutorial_lib.train._checkpoint import clear_checkpoint, load_checkpoint, save_checkpoint

__all__ = ["NAME", "make_config", "train"]

NAME = "galaxy-cddpm"
CHECKPOINT_EVERY_S = 300.0


def make_config(steps: int | None = None, profile: Profile | None = None) -> dict:
    config = copy.deepcopy(CDDPM_CONFIGS[profile or current_profile()])
    if steps is not None:
        config["steps"] = parse_steps(steps)
    return config


def _base_model(config: dict):
    """The shipped unconditional U-Net this run starts from, and its weights' sha256."""
    from tutorial_lib.artifacts import read_metadata
    from tutorial_lib.diffusion.galaxy import pretrained_galaxy_ddpm

    ddpm = pretrained_galaxy_ddpm()
    meta = read_metadata(config["base"])
    if meta["config"]["unet"] != config["unet"] or ddpm.image_size != config["image_size"]:
        raise ValueError(
            f"the shipped {config['base']} is not the U-Net this config fine-tunes; retrain it "
            f"with `python -m tutorial_lib.train {config['base']}` under the same profile"
        )
    return ddpm.model.net, meta["files"]["weights.eqx"]["sha256"]


def _heldout_loss(model, schedule, images, labels, key, prediction, repeats=4) -> float:
    x0 = to_model_space(jnp.asarray(images))
    loss = jax.jit(
        lambda k, c: ddpm_loss(
            model, schedule, x0, k, dropout=False, prediction=prediction, labels=c
        )
    )
    return float(np.mean([loss(k, jnp.asarray(labels)) for k in jr.split(key, repeats)]))


@register_trainer(
    NAME,
    make_config=make_config,
    description="class-conditional galaxy DDPM (spiral / not), fine-tuned from galaxy-ddpm",
)
def train(config: dict) -> TrainResult:
    split = labelled_split(config["image_size"], config["data"])
    schedule = make_schedule(config["schedule"])
    base, base_sha = _base_model(config)
    model = ConditionalUNet(base, len(split.label_names))
    null, batch = model.null_label, config["batch_size"]
    print(
        f"{NAME}: {count_parameters(model):,} parameters, fine-tuned from {config['base']}; "
        f"{len(split.train)} training galaxies, {config['steps']} steps",
        flush=True,
    )
    lr = optax.warmup_cosine_decay_schedule(
        0.0, config["learning_rate"], min(config["warmup_steps"], config["steps"] // 10),
        config["steps"],
        config["learning_rate"] / 10,
    )  # fmt: skip
    optimiser = optax.chain(optax.clip_by_global_norm(config["grad_clip"]), optax.adam(lr))

    def prepare(key, data):
        """A random batch under a random symmetry of the square, its labels dropped at random."""
        images, labels = data
        k_idx, k_sym, k_drop = jr.split(key, 3)
        idx = jr.randint(k_idx, (batch,), 0, images.shape[0])
        x0 = to_model_space(random_dihedral(k_sym, images[idx]))
        return x0, drop_labels(k_drop, labels[idx], null, config["p_uncond"])

    train_step = make_train_step(
        schedule, optimiser, prepare, ema_decay=config["ema_decay"],
        prediction=config["prediction"],
    )  # fmt: skip
    state = init_train_state(model, optimiser)
    data = (jnp.asarray(split.train), jnp.asarray(split.train_labels))
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
        state, loss = train_step(data, state, k)
        if i == first:
            loss.block_until_ready()
            compiled = time.perf_counter()
        if (i + 1) % max(1, steps // 40) == 0 or i == steps - 1:
            history.append([i + 1, float(loss)])
            print(f"  step {i + 1:>6}  loss {float(loss):.4f}", flush=True)
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
    train_wall = previous_wall + time.perf_counter() - start

    # Held-out loss with the true labels and with the null label: how much the label tells.
    shipped = store(state.ema)
    ema = restore(shipped)
    k_eval = jr.key(config["seed"] + 1)
    pred = config["prediction"]
    held_true = _heldout_loss(ema, schedule, split.heldout, split.heldout_labels, k_eval, pred)
    held_null = _heldout_loss(
        ema, schedule, split.heldout, np.full(len(split.heldout), null), k_eval, pred
    )
    held_swap = _heldout_loss(ema, schedule, split.heldout, 1 - split.heldout_labels, k_eval, pred)

    ref = config["reference_samples"]
    cddpm = GalaxyCDDPM(ema, schedule, split.label_names, {}, {})
    t0 = time.perf_counter()
    samples = {"unconditional": cddpm.sample(jr.key(ref["seed"]), ref["n"], label=None)}
    for w in ref["guidance"]:
        for label, name in enumerate(split.label_names):
            k = jr.fold_in(jr.key(ref["seed"]), label)  # the same noise for every guidance
            samples[f"{name}@{w:g}"] = cddpm.sample(k, ref["n"], label=label, guidance=w)
    sample_s = time.perf_counter() - t0
    samples = {k: np.asarray(jnp.round(v * 255), dtype=np.uint8) for k, v in samples.items()}
    print(
        f"{NAME}: held-out loss {held_true:.4f} with the true labels, {held_null:.4f} with the "
        f"null label, {held_swap:.4f} with the wrong ones; reference samples in {sample_s:.0f} s",
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
            "label_names": list(split.label_names),
            "base_weights_sha256": base_sha,
        },
        metrics={
            "parameters": count_parameters(model),
            "heldout_v_mse_true_label": held_true,
            "heldout_v_mse_null_label": held_null,
            "heldout_v_mse_wrong_label": held_swap,
            "train_images_per_s": round(images_per_s, 1),
            "train_wall_s": round(train_wall, 1),
            "compile_s": round(compiled - start, 1),
            "reference_sampling_s": round(sample_s, 1),
            "sessions": sessions,
            "loss_history": history,
        },
    )
