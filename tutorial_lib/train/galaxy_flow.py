"""Trainer of the shipped galaxy flow: `python -m tutorial_lib.train galaxy-flow`.

A RealNVP-style multi-scale flow (`tutorial_lib.generative.flow`) fitted by maximum likelihood
to uniformly dequantised 8-bit galaxies (`tutorial_lib.generative.bits`), on the galaxy DDPM's
training split, augmented with the 8 symmetries of the square. Resumable like the other
trainers; `--steps N` makes a smoke run that is never installed.
"""

import copy

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from tutorial_lib.config import Profile
from tutorial_lib.config import profile as current_profile
from tutorial_lib.data import random_dihedral
from tutorial_lib.generative.bits import bits_per_dim, dequantise
from tutorial_lib.generative.flow import initialise_actnorm
from tutorial_lib.generative.galaxies import labelled_split
from tutorial_lib.generative.models import FLOW_CONFIGS, build_flow, flow_bits_per_dim
from tutorial_lib.train import TrainResult, parse_steps, register_trainer
from tutorial_lib.train._checkpoint import clear_checkpoint
from tutorial_lib.train._loop import fit

__all__ = ["NAME", "make_config", "train"]

NAME = "galaxy-flow"


def make_config(steps: int | None = None, profile: Profile | None = None) -> dict:
    config = copy.deepcopy(FLOW_CONFIGS[profile or current_profile()])
    if steps is not None:
        config["steps"] = parse_steps(steps)
    return config


def channels_first(images):
    return jnp.transpose(jnp.asarray(images), (0, 3, 1, 2))


@register_trainer(
    NAME,
    make_config=make_config,
    description="RealNVP-style multi-scale flow on 32x32 SDSS galaxies (exact bits/dim)",
)
def train(config: dict) -> TrainResult:
    split = labelled_split(config["image_size"], config["data"])
    batch = config["batch_size"]
    data = jnp.asarray(split.train)
    init_images = channels_first(dequantise(jr.key(config["seed"] + 1), split.train))
    flow = initialise_actnorm(build_flow(config), init_images[: config["init_batch"]])
    n_params = sum(x.size for x in jax.tree.leaves(eqx.filter(flow, eqx.is_inexact_array)))
    print(f"{NAME}: {n_params:,} parameters, {len(split.train)} training images", flush=True)

    def loss(flow, data, key):
        k_idx, k_sym, k_u = jr.split(key, 3)
        images = random_dihedral(k_sym, data[jr.randint(k_idx, (batch,), 0, data.shape[0])])
        y = channels_first(dequantise(k_u, images))
        return jnp.mean(bits_per_dim(jax.vmap(flow.log_prob)(y), y[0].size))

    flow, run = fit(NAME, config, flow, loss, data, seed=config["seed"])
    seed = config["dequantisation_seed"]
    heldout = flow_bits_per_dim(flow, split.heldout, seed)
    train_bpd = flow_bits_per_dim(flow, split.train[: len(split.heldout)], seed)
    print(f"{NAME}: held-out {heldout.mean():.3f} bits/dim (train {train_bpd.mean():.3f})")
    clear_checkpoint(NAME)
    return TrainResult(
        previous_wall_s=run["previous_wall_s"],
        tree=flow,
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
            "heldout_bits_per_dim": round(float(heldout.mean()), 4),
            "heldout_bits_per_dim_sem": round(
                float(heldout.std(ddof=1) / np.sqrt(len(heldout))), 4
            ),
            "train_bits_per_dim_same_size": round(float(train_bpd.mean()), 4),
            "train_images_per_s": run["images_per_s"],
            "compile_s": run["compile_s"],
            "sessions": run["sessions"],
            "loss_history": run["history"],
        },
    )
