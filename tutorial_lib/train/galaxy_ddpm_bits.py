"""The galaxy DDPM's held-out bits/dim, computed once:
`python -m tutorial_lib.train galaxy-ddpm-bits`.

Not a training run but an evaluation too slow for a page (a few seconds of U-Net
Jacobian-vector products per galaxy on two CPU cores, plus half a minute of compilation): the
probability-flow likelihood of every held-out galaxy under the shipped galaxy DDPM
(`tutorial_lib.generative.likelihood.ddpm_bits_per_dim`), in the units and with the
dequantisation noise of the flow and the VAE. The artifact records the sha256 of the DDPM
weights it evaluated. `--steps N` evaluates only the first N held-out galaxies.
"""

import copy
from typing import Any

import jax.random as jr
import numpy as np

from tutorial_lib.config import Profile
from tutorial_lib.generative.bits import DEQUANTISATION_SEED
from tutorial_lib.generative.galaxies import DATA, IMAGE_SIZE, labelled_split
from tutorial_lib.generative.likelihood import ddpm_bits_per_dim
from tutorial_lib.train import TrainResult, parse_steps, register_trainer

__all__ = ["CONFIG", "NAME", "make_config", "train"]

NAME = "galaxy-ddpm-bits"

CONFIG: dict[str, Any] = {
    "model": "galaxy-ddpm",
    "image_size": IMAGE_SIZE,
    "data": DATA,
    "images": "all held-out",
    "t_min": 1e-3,
    "tol": 1e-3,
    "probe_seed": 0,
    "dequantisation_seed": DEQUANTISATION_SEED,
    "batch": 4,
}


def make_config(steps: int | None = None, profile: Profile | None = None) -> dict:
    """The same config for both profiles; `steps` limits the number of held-out galaxies."""
    config = copy.deepcopy(CONFIG)
    if steps is not None:
        config["images"] = parse_steps(steps)
    return config


@register_trainer(
    NAME,
    make_config=make_config,
    description="probability-flow bits/dim of the held-out galaxies under the galaxy DDPM",
)
def train(config: dict) -> TrainResult:
    from tutorial_lib.artifacts import read_metadata
    from tutorial_lib.diffusion.galaxy import pretrained_galaxy_ddpm

    ddpm = pretrained_galaxy_ddpm()
    if ddpm.image_size != config["image_size"]:
        raise ValueError(
            f"the galaxy DDPM is {ddpm.image_size}x{ddpm.image_size}; Part IV compares models "
            f"at {config['image_size']}x{config['image_size']}"
        )
    split = labelled_split(config["image_size"], config["data"])
    n = len(split.heldout) if config["images"] == "all held-out" else config["images"]
    images = split.heldout[:n]
    keys = jr.split(jr.key(config["probe_seed"]), n)
    bits, steps = [], []
    b = config["batch"]
    for i in range(0, n, b):
        out, st = ddpm_bits_per_dim(
            ddpm,
            images[i : i + b],
            keys[i],
            t_min=config["t_min"],
            tol=config["tol"],
            dequantisation_seed=config["dequantisation_seed"],
        )
        bits.append(out)
        steps.append(st)
        print(f"  {i + len(out)}/{n}: {np.mean(np.concatenate(bits)):.3f} bits/dim", flush=True)
    bits, steps = np.concatenate(bits).astype(np.float32), np.concatenate(steps).astype(np.int32)
    ddpm_meta = read_metadata("galaxy-ddpm")
    return TrainResult(
        tree={"bits_per_dim": bits, "ode_steps": steps},
        config=config,
        data={
            "dataset": config["data"]["source"],
            "images_sha256": split.data_sha256,
            "heldout_ids": split.heldout_ids[:n],
            "ddpm_weights_sha256": ddpm_meta["files"]["weights.eqx"]["sha256"],
        },
        metrics={
            "heldout_bits_per_dim": round(float(bits.mean()), 4),
            "heldout_bits_per_dim_sem": round(float(bits.std(ddof=1) / np.sqrt(n)), 4),
            "mean_ode_steps": round(float(steps.mean()), 1),
        },
    )
