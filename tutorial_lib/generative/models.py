"""Part IV's shipped galaxy models behind one interface: `pretrained(name)`.

`pretrained("galaxy-vae")`, `pretrained("galaxy-flow")` and `pretrained("galaxy-ddpm")` return
objects with `.image_size`, `.metadata` (the trainer's record: config, data hash, command,
hardware, wall time, held-out metrics) and `.sample(key, n)` -> `(n, s, s, 3)` in `[0, 1]`.
The VAE adds `.encode`, `.decode` and `.bits_per_dim` (a bound); the flow `.bits_per_dim`
(exact). The configs the trainers (`python -m tutorial_lib.train galaxy-vae | galaxy-flow`)
record live here, so that the loaders and the trainers agree.
"""

import copy
import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from tutorial_lib.generative.bits import (
    DEQUANTISATION_SEED,
    bits_per_dim,
    check_images,
    dequantise,
)
from tutorial_lib.generative.flow import ImageFlow, build_image_flow
from tutorial_lib.generative.galaxies import DATA, IMAGE_SIZE
from tutorial_lib.generative.vae import VAE

__all__ = [
    "FLOW_CONFIGS",
    "MODELS",
    "VAE_CONFIGS",
    "GalaxyFlow",
    "GalaxyVAE",
    "build_flow",
    "build_vae",
    "elbo_terms",
    "flow_bits_per_dim",
    "pretrained",
]

MODELS = ("galaxy-vae", "galaxy-flow", "galaxy-ddpm")

_VAE_CPU: dict[str, Any] = {
    "image_size": IMAGE_SIZE,
    "data": DATA,
    "vae": {"latent_dim": 32, "width": 32},
    "betas": [0.25, 1.0, 4.0],
    "batch_size": 64,
    "steps": 3000,
    "learning_rate": 1e-3,
    "warmup_steps": 200,
    "grad_clip": 10.0,
    "seed": 0,
    "eval": {"samples": 16, "seed": 2},
}
_VAE_GPU = copy.deepcopy(_VAE_CPU) | {"batch_size": 128, "steps": 20_000}
_VAE_GPU["vae"] = {"latent_dim": 32, "width": 64}
VAE_CONFIGS: dict[str, dict[str, Any]] = {"cpu": _VAE_CPU, "gpu": _VAE_GPU}

_FLOW_CPU: dict[str, Any] = {
    "image_size": IMAGE_SIZE,
    "data": DATA,
    "flow": {"levels": 3, "couplings": 3, "final_couplings": 4, "hidden": 48, "alpha": 0.05},
    "batch_size": 32,
    "steps": 6000,
    "learning_rate": 1e-3,
    "warmup_steps": 200,
    "grad_clip": 10.0,
    "init_batch": 256,
    "seed": 0,
    "dequantisation_seed": DEQUANTISATION_SEED,
}
_FLOW_GPU = copy.deepcopy(_FLOW_CPU) | {"batch_size": 64, "steps": 30_000}
_FLOW_GPU["flow"] = _FLOW_CPU["flow"] | {"hidden": 128}
FLOW_CONFIGS: dict[str, dict[str, Any]] = {"cpu": _FLOW_CPU, "gpu": _FLOW_GPU}


def build_vae(config: dict[str, Any], *, key: PRNGKeyArray | None = None) -> VAE:
    """The untrained VAE of a config (its seed unless `key` is given)."""
    return VAE(
        config["image_size"],
        config["vae"]["latent_dim"],
        config["vae"]["width"],
        key=jr.key(config["seed"]) if key is None else key,
    )


def build_flow(config: dict[str, Any], *, key: PRNGKeyArray | None = None) -> ImageFlow:
    """The untrained flow of a config (its seed unless `key` is given)."""
    return build_image_flow(
        image_size=config["image_size"],
        **config["flow"],
        key=jr.key(config["seed"]) if key is None else key,
    )


def _channels_first(images) -> Float[Array, "n 3 s s"]:
    return jnp.transpose(jnp.asarray(images), (0, 3, 1, 2))


def _batched(fn, *arrays, size: int = 64) -> np.ndarray:
    """`fn` on slices of `size` rows, concatenated (bounded memory, one compilation)."""
    n = len(arrays[0])
    return np.concatenate(
        [np.asarray(fn(*(a[i : i + size] for a in arrays))) for i in range(0, n, size)]
    )


@eqx.filter_jit
def _elbo_terms(vae, x, keys, samples):
    return jax.vmap(lambda xi, k: vae.elbo(xi, k, samples=samples))(x, keys)


def elbo_terms(
    vae: VAE, images: ArrayLike, *, samples: int = 16, seed: int = 2
) -> dict[str, np.ndarray]:
    """Per image: `-ELBO` in bits/dim (`beta = 1`), the reconstruction term and the KL (nats),
    for 8-bit images `(n, s, s, 3)` in [0, 1], with `samples` posterior draws from a fixed key."""
    x = _channels_first(check_images(images, image_size=vae.decoder.image_size, eight_bit=True))
    x = jnp.round(x * 255) / 255
    keys = jr.split(jr.key(seed), len(x))
    out = {"elbo": [], "reconstruction": [], "kl": []}
    for i in range(0, len(x), 64):
        t = _elbo_terms(vae, x[i : i + 64], keys[i : i + 64], samples)
        for name in out:
            out[name].append(np.asarray(getattr(t, name)))
    elbo = np.concatenate(out["elbo"])
    return {
        "bits_per_dim": -elbo / (x[0].size * math.log(2)),
        "reconstruction_nats": np.concatenate(out["reconstruction"]),
        "kl_nats": np.concatenate(out["kl"]),
    }


@eqx.filter_jit
def _flow_log_prob(flow, y):
    return jax.vmap(flow.log_prob)(y)


def flow_bits_per_dim(
    flow: ImageFlow, images: ArrayLike, seed: int = DEQUANTISATION_SEED
) -> Float[np.ndarray, " n"]:
    """Exact bits/dim of each 8-bit image `(n, s, s, 3)` in [0, 1] under the flow, with the
    uniform dequantisation noise drawn from `jr.key(seed)` (see `tutorial_lib.generative.bits`)."""
    x = check_images(images, image_size=flow.image_shape[1], eight_bit=True)
    y = _channels_first(dequantise(jr.key(seed), x))
    log_prob = _batched(lambda b: _flow_log_prob(flow, b), y)
    return np.asarray(bits_per_dim(log_prob, y[0].size))


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a whole number >= 1 of images to draw, got {n!r}")
    return int(n)


@dataclasses.dataclass(frozen=True, eq=False)
class GalaxyVAE:
    """A shipped galaxy VAE. `pretrained("galaxy-vae")` is the `beta = 1` model; `.sweep`
    holds every model of the beta sweep by `beta` (`"0.25"`, `"1"`, `"4"`), each a
    `GalaxyVAE` with the same methods."""

    model: VAE
    metadata: dict
    beta: float
    sweep: dict[str, "GalaxyVAE"] = dataclasses.field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return self.model.decoder.image_size

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    def encode(self, images: ArrayLike) -> Float[Array, "n d"]:
        """Posterior means `mu(x)` of images `(n, s, s, 3)` in [0, 1]."""
        x = _channels_first(check_images(images, image_size=self.image_size))
        return jnp.asarray(_batched(lambda b: _encode(self.model, b), x, size=256))

    def decode(self, z: ArrayLike) -> Float[Array, "n s s 3"]:
        """The decoder's mean image (the logistics' locations) of each latent `(n, latent_dim)`."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or not np.all(np.isfinite(z)):
            raise ValueError(
                f"expected finite latents of shape (n, {self.latent_dim}), got {z.shape}"
            )
        return jnp.transpose(
            jnp.asarray(_batched(lambda b: _decode(self.model, b), z, size=256)), (0, 2, 3, 1)
        )

    def reconstruct(self, images: ArrayLike) -> Float[Array, "n s s 3"]:
        """`decode(encode(images))`: each image through its posterior mean."""
        return self.decode(self.encode(images))

    def sample(self, key: PRNGKeyArray, n: object) -> Float[Array, "n s s 3"]:
        """`n` galaxies: `z ~ N(0, I)`, decoded to the mean image (no pixel noise added)."""
        return self.decode(jr.normal(key, (_check_n(n), self.latent_dim)))

    def bits_per_dim(self, images: ArrayLike) -> Float[np.ndarray, " n"]:
        """`-ELBO` in bits/dim of each 8-bit image: an upper bound on its true bits/dim."""
        return elbo_terms(self.model, images, **self.metadata["config"]["eval"])["bits_per_dim"]


@eqx.filter_jit
def _encode(vae, x):
    return jax.vmap(vae.encoder)(x)[0]


@eqx.filter_jit
def _decode(vae, z):
    return jax.vmap(vae.decoder)(z)[0]


@dataclasses.dataclass(frozen=True, eq=False)
class GalaxyFlow:
    """The book's galaxy normalizing flow."""

    model: ImageFlow
    metadata: dict

    @property
    def image_size(self) -> int:
        return self.model.image_shape[1]

    def sample(
        self, key: PRNGKeyArray, n: object, *, temperature: float = 1.0
    ) -> Float[Array, "n s s 3"]:
        """`n` galaxies with the base drawn from `N(0, temperature^2 I)` (1 = the model)."""
        if not (isinstance(temperature, (int, float)) and temperature >= 0):
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        keys = jr.split(key, _check_n(n))
        x = _flow_sample(self.model, keys, jnp.float32(temperature))
        return jnp.transpose(x, (0, 2, 3, 1))

    def bits_per_dim(self, images: ArrayLike) -> Float[np.ndarray, " n"]:
        """Exact bits/dim of each 8-bit image `(n, s, s, 3)` in [0, 1].

        The flow is a density on `[0, 1]^D`; an 8-bit image (levels `k / 255`) is dequantised
        to `(k + u) / 256` with `u ~ U[0, 1)^D` drawn from the fixed key
        `jr.key(DEQUANTISATION_SEED)`, and its bits/dim is `-(log p(y) - D log 256) / (D log 2)`:
        exact for that `y`, and on average an upper bound on the discrete model's bits/dim.
        """
        return flow_bits_per_dim(self.model, images)


@eqx.filter_jit
def _flow_sample(flow, keys, temperature):
    return jax.vmap(lambda k: flow.sample(k, temperature))(keys)


def _config_of(name: str, configs: dict[str, dict], root) -> dict:
    from tutorial_lib.artifacts import ArtifactError, config_differences, read_metadata

    recorded = read_metadata(name, root=root).get("config")
    for config in configs.values():
        # A smoke run (`--steps N`) differs only in its step count: it loads too.
        if isinstance(recorded, dict) and not config_differences(
            recorded, config | {"steps": recorded.get("steps")}
        ):
            return recorded
    raise ArtifactError(
        f"artifact {name!r} was trained with a config that neither the CPU nor the GPU profile "
        f"of this code has. Rebuild it with `python -m tutorial_lib.train {name}`."
    )


def _load(name: str, root):
    from tutorial_lib.artifacts import load_artifact

    if name == "galaxy-vae":
        config = _config_of(name, VAE_CONFIGS, root)
        like = {f"{b:g}": eqx.filter_eval_shape(build_vae, config) for b in config["betas"]}
        like = jax.tree.map(
            lambda x: np.zeros(x.shape, x.dtype) if isinstance(x, jax.ShapeDtypeStruct) else x,
            like,
        )
        tree, metadata = load_artifact(name, like, config=config, root=root)
        sweep = {b: GalaxyVAE(m, metadata, float(b)) for b, m in tree.items()}
        for model in sweep.values():
            model.sweep.update(sweep)
        return sweep["1"]
    config = _config_of(name, FLOW_CONFIGS, root)
    like = eqx.filter_eval_shape(build_flow, config)
    like = jax.tree.map(
        lambda x: np.zeros(x.shape, x.dtype) if isinstance(x, jax.ShapeDtypeStruct) else x, like
    )
    tree, metadata = load_artifact(name, like, config=config, root=root)
    return GalaxyFlow(tree, metadata)


def pretrained(name: str, *, root=None):
    """A shipped galaxy model by name: `"galaxy-vae"`, `"galaxy-flow"` or `"galaxy-ddpm"`.

    All three have `.image_size`, `.metadata` and `.sample(key, n)` -> `(n, s, s, 3)` in
    `[0, 1]`. `root` reads artifacts from another folder (default: `$JAXGENAI_ARTIFACTS`, else
    the ones shipped with the package).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if name == "galaxy-ddpm":
        from tutorial_lib.diffusion.galaxy import pretrained_galaxy_ddpm

        return pretrained_galaxy_ddpm(root=root)
    return _load(name, root)
