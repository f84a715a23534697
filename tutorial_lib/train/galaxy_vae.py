"""Trainer of the shipped galaxy VAEs: `python -m tutorial_lib.train galaxy-vae`.

Convolutional VAEs (`tutorial_lib.generative.vae`) with a discretised-logistic likelihood,
fitted on the galaxy DDPM's training split (augmented with the 8 symmetries of the square) for
each KL weight `beta` of the config: the `beta = 1` model is the book's VAE, the others are the
beta sweep of the VAE chapter. Resumable like the other trainers (each beta is checkpointed on
its own); `--steps N` makes a smoke run that is never installed.
"""

import copy
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from tutorial_lib.config import Profile
from tutorial_lib.config import profile as current_profile
from tutorial_lib.data import random_dihedral
from tutorial_lib.generative.galaxies import labelled_split
from tutorial_lib.generative.models import VAE_CONFIGS, build_vae, elbo_terms
from tutorial_lib.train import TrainResult, parse_steps, register_trainer
from tutorial_lib.train._checkpoint import clear_checkpoint
from tutorial_lib.train._loop import fit

__all__ = ["NAME", "make_config", "train"]

NAME = "galaxy-vae"


def make_config(steps: int | None = None, profile: Profile | None = None) -> dict:
    config = copy.deepcopy(VAE_CONFIGS[profile or current_profile()])
    if steps is not None:
        config["steps"] = parse_steps(steps)
    return config


def _summary(values: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for name, v in values.items():
        out[name] = round(float(v.mean()), 4)
        out[name + "_sem"] = round(float(v.std(ddof=1) / np.sqrt(len(v))), 4)
    return out


@register_trainer(
    NAME,
    make_config=make_config,
    description="convolutional VAEs (a beta sweep) on 32x32 SDSS galaxies",
)
def train(config: dict) -> TrainResult:
    split = labelled_split(config["image_size"], config["data"])
    batch = config["batch_size"]
    data = jnp.asarray(split.train)
    dims = 3 * config["image_size"] ** 2
    models, metrics, walls, previous = {}, {}, {}, 0.0
    for i, beta in enumerate(config["betas"]):
        vae = build_vae(config, key=jr.key(config["seed"] + i))

        def loss(vae, data, key, beta=beta):
            k_idx, k_sym, k_elbo = jr.split(key, 3)
            images = random_dihedral(k_sym, data[jr.randint(k_idx, (batch,), 0, data.shape[0])])
            x = jnp.transpose(images, (0, 3, 1, 2))
            keys = jr.split(k_elbo, batch)
            terms = jax.vmap(lambda xi, k: vae.elbo(xi, k, beta=beta))(x, keys)
            return -jnp.mean(terms.elbo) / (dims * math.log(2))

        print(f"{NAME}: beta = {beta}", flush=True)
        vae, run = fit(f"{NAME}-beta{beta:g}", config, vae, loss, data, seed=config["seed"] + i)
        ev = config["eval"]
        held = elbo_terms(vae, split.heldout, samples=ev["samples"], seed=ev["seed"])
        train_part = split.train[: len(split.heldout)]
        trained = elbo_terms(vae, train_part, samples=ev["samples"], seed=ev["seed"])
        print(f"{NAME}: beta {beta}: held-out -ELBO {held['bits_per_dim'].mean():.3f} bits/dim")
        models[f"{beta:g}"] = vae
        previous += run["previous_wall_s"]
        walls[f"{beta:g}"] = round(run["wall_s"], 1)
        metrics[f"beta={beta:g}"] = {
            "heldout": _summary(held),
            "train_same_size": _summary(trained),
            "train_images_per_s": run["images_per_s"],
            "sessions": run["sessions"],
            "wall_s": round(run["wall_s"], 1),
            "loss_history": run["history"],
        }
    for beta in config["betas"]:
        clear_checkpoint(f"{NAME}-beta{beta:g}")
    n_params = sum(x.size for x in jax.tree.leaves(eqx.filter(models["1"], eqx.is_inexact_array)))
    return TrainResult(
        previous_wall_s=previous,
        tree=models,
        config=config,
        data={
            "dataset": config["data"]["source"],
            "images_sha256": split.data_sha256,
            "n_train": len(split.train),
            "n_heldout": len(split.heldout),
            "heldout_ids": split.heldout_ids,
        },
        metrics={
            "parameters": int(n_params),
            "heldout_bits_per_dim": metrics["beta=1"]["heldout"]["bits_per_dim"],
            **metrics,
        },
    )
