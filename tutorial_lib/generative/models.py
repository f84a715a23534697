"""Part IV's shipped galaxy models behind one interface: `pretrained(name)`.

`pretrained(name)` for `name` in `MODELS` (VAE, flow, DDPM, GAN, class-conditional DDPM) returns
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

from tutorial_lib.diffusion.ddpm import VPrediction
from tutorial_lib.diffusion.galaxy import CPU_CONFIG, GPU_CONFIG, GalaxyDDPM
from tutorial_lib.diffusion.schedule import NoiseSchedule
from tutorial_lib.generative.bits import (
    DEQUANTISATION_SEED,
    bits_per_dim,
    check_images,
    dequantise,
)
from tutorial_lib.generative.conditional import ConditionalUNet, GuidedNet
from tutorial_lib.generative.flow import ImageFlow, build_image_flow
from tutorial_lib.generative.galaxies import DATA, IMAGE_SIZE
from tutorial_lib.generative.gan import ConvCritic, ConvGenerator
from tutorial_lib.generative.vae import VAE

__all__ = [
    "CDDPM_CONFIGS",
    "DEFAULT_GUIDANCE",
    "FLOW_CONFIGS",
    "GAN_CONFIGS",
    "MODELS",
    "VAE_CONFIGS",
    "GalaxyCDDPM",
    "GalaxyFlow",
    "GalaxyGAN",
    "GalaxyVAE",
    "build_flow",
    "build_gan",
    "build_vae",
    "elbo_terms",
    "flow_bits_per_dim",
    "pretrained",
]

MODELS = ("galaxy-vae", "galaxy-flow", "galaxy-ddpm", "galaxy-gan", "galaxy-cddpm")

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


def _cddpm_config(base: dict[str, Any], **changes) -> dict[str, Any]:
    """A conditional DDPM fine-tuned from the galaxy DDPM of config `base`."""
    keep = ("image_size", "unet", "schedule", "prediction", "data", "grad_clip", "ema_decay")
    config = {k: copy.deepcopy(base[k]) for k in keep}
    config |= {
        "base": "galaxy-ddpm",
        "labels": "galaxy-zoo spiral / not spiral",
        "p_uncond": 0.2,
        "seed": 0,
        "stored_dtype": "float16",
        "reference_samples": {
            "n": 64, "sampler": "ddim", "steps": 50, "seed": 1, "guidance": [0.0, 1.0, 2.0, 4.0]
        },
    }  # fmt: skip
    return config | changes


_GAN_CPU: dict[str, Any] = {
    "image_size": IMAGE_SIZE,
    "data": DATA,
    # A critic of width 16 (173k parameters) trains 2.8x faster than one of 32 on this CPU.
    "gan": {"latent_dim": 64, "generator_width": 32, "critic_width": 16},
    "loss": "non-saturating",
    "penalty": 1.0,  # R1 weight gamma (Mescheder et al. 2018)
    "critic_steps": 1,
    "batch_size": 64,
    "steps": 4000,
    "learning_rate": 2e-4,
    "adam_b1": 0.5,
    "adam_b2": 0.99,
    "ema_decay": 0.999,
    "seed": 0,
}
_GAN_GPU = copy.deepcopy(_GAN_CPU) | {"batch_size": 128, "steps": 40_000}
_GAN_GPU["gan"] = {"latent_dim": 128, "generator_width": 64, "critic_width": 64}
GAN_CONFIGS: dict[str, dict[str, Any]] = {"cpu": _GAN_CPU, "gpu": _GAN_GPU}

CDDPM_CONFIGS: dict[str, dict[str, Any]] = {
    "cpu": _cddpm_config(
        CPU_CONFIG, batch_size=16, steps=2500, learning_rate=3e-4, warmup_steps=100
    ),
    "gpu": _cddpm_config(
        GPU_CONFIG, batch_size=128, steps=4000, learning_rate=1e-4, warmup_steps=200
    ),
}
DEFAULT_GUIDANCE = 4.0
"""The guidance weight `GalaxyCDDPM.sample` uses unless told: see the conditional page."""


def build_vae(config: dict[str, Any], *, key: PRNGKeyArray | None = None) -> VAE:
    """The untrained VAE of a config (its seed unless `key` is given)."""
    return VAE(
        config["image_size"],
        config["vae"]["latent_dim"],
        config["vae"]["width"],
        key=jr.key(config["seed"]) if key is None else key,
    )


def build_gan(
    config: dict[str, Any], *, key: PRNGKeyArray | None = None
) -> tuple[ConvGenerator, ConvCritic]:
    """The untrained generator and critic of a config (its seed unless `key` is given)."""
    k_g, k_d = jr.split(jr.key(config["seed"]) if key is None else key)
    g = config["gan"]
    return (
        ConvGenerator(g["latent_dim"], config["image_size"], g["generator_width"], key=k_g),
        ConvCritic(config["image_size"], g["critic_width"], key=k_d),
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


def _batched(fn, *arrays, size: int = 64):
    """`fn` on chunks of `size` rows, concatenated: bounded memory, and one compilation.

    Chunks have `size` rows, or, for fewer rows, the next power of two: the last chunk is padded
    (repeating its last row) and the padding dropped from the result, so that `fn` sees at most
    a few shapes and compiles once for each (a compilation costs seconds), while the padding
    never more than doubles the work. `fn` may return an array or a tuple of them.
    """
    n = len(arrays[0])
    size = min(size, 1 << (n - 1).bit_length())
    pieces = []
    for i in range(0, n, size):
        rows = np.minimum(np.arange(i, i + size), n - 1)  # past the end: the last row again
        out = fn(*(a[rows] for a in arrays))
        keep = min(size, n - i)
        pieces.append(jax.tree.map(lambda x, keep=keep: np.asarray(x)[:keep], out))
    return jax.tree.map(lambda *xs: np.concatenate(xs), *pieces)


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
    t = _batched(lambda b, k: _elbo_terms(vae, b, k, samples), x, keys)
    return {
        "bits_per_dim": -t.elbo / (x[0].size * math.log(2)),
        "reconstruction_nats": t.reconstruction,
        "kl_nats": t.kl,
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
        temperature = jnp.float32(temperature)
        x = _batched(lambda k: _flow_sample(self.model, k, temperature), keys)
        return jnp.transpose(jnp.asarray(x), (0, 2, 3, 1))

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


@dataclasses.dataclass(frozen=True, eq=False)
class GalaxyGAN:
    """The book's galaxy GAN: the moving average of its generator's weights."""

    generator: ConvGenerator
    metadata: dict

    @property
    def image_size(self) -> int:
        return self.generator.image_size

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def generate(self, z: ArrayLike) -> Float[Array, "n s s 3"]:
        """The galaxies of latent codes `z` `(n, latent_dim)`, in [0, 1]."""
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or not np.all(np.isfinite(z)):
            raise ValueError(
                f"expected finite latents of shape (n, {self.latent_dim}), got {z.shape}"
            )
        x = _batched(lambda b: _generate(self.generator, b), z, size=256)
        return jnp.transpose((jnp.asarray(x) + 1) / 2, (0, 2, 3, 1))

    def sample(self, key: PRNGKeyArray, n: object) -> Float[Array, "n s s 3"]:
        """`n` galaxies from `z ~ N(0, I)`: one pass of the generator."""
        return self.generate(jr.normal(key, (_check_n(n), self.latent_dim)))


@eqx.filter_jit
def _generate(generator, z):
    return jax.vmap(generator)(z)


@dataclasses.dataclass(frozen=True, eq=False)
class GalaxyCDDPM:
    """The book's class-conditional galaxy DDPM with classifier-free guidance.

    `.sample(key, n, label=..., guidance=...)`: `label` an index into `.label_names` (or the
    name itself), `None` for the unconditional model; `guidance` the weight `w >= 0` of
    `tutorial_lib.generative.conditional` (0: unconditional, 1: conditional, more: stronger).
    `.reference_samples` holds the trainer's guidance sweep, by `"name@w"` and
    `"unconditional"`, as `(n, s, s, 3)` in [0, 1].
    """

    model: ConditionalUNet
    schedule: NoiseSchedule
    label_names: tuple[str, ...]
    reference_samples: dict[str, Float[np.ndarray, "k s s 3"]]
    metadata: dict

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def label_index(self, label: object) -> int | None:
        """`label` as an index into `.label_names` (None stays None); else a `ValueError`."""
        if label is None:
            return None
        if isinstance(label, str) and label in self.label_names:
            return self.label_names.index(label)
        if (
            isinstance(label, (int, np.integer))
            and not isinstance(label, bool)
            and 0 <= label < len(self.label_names)
        ):
            return int(label)
        choices = ", ".join(f"{i} ({name})" for i, name in enumerate(self.label_names))
        raise ValueError(f"unknown label {label!r}: use one of {choices}, or None")

    def sample(
        self,
        key: PRNGKeyArray,
        n: object,
        *,
        label: object = None,
        guidance: object = DEFAULT_GUIDANCE,
        steps: object = 50,
    ) -> Float[Array, "n s s 3"]:
        """`n` galaxies of class `label` (None: any class) with guidance weight `guidance`,
        by deterministic DDIM with `steps` steps (two network calls each when guided)."""
        label = self.label_index(label)
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float, np.floating)):
            raise ValueError(f"guidance must be a number >= 0, got {guidance!r}")
        if not (math.isfinite(guidance) and guidance >= 0):
            raise ValueError(
                f"guidance must be >= 0 (0: unconditional, 1: conditional), got {guidance!r}"
            )
        _check_n(n)
        net = VPrediction(GuidedNet(self.model, label, float(guidance)), self.schedule)
        none = np.zeros((0, self.image_size, self.image_size, 3), np.float32)
        return GalaxyDDPM(net, self.schedule, none, {}).sample(key, n, sampler="ddim", steps=steps)


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


def _zeros_like_shapes(tree, dtype=None):
    return jax.tree.map(
        lambda x: np.zeros(x.shape, dtype or x.dtype) if isinstance(x, jax.ShapeDtypeStruct) else x,
        tree,
    )


def _load_cddpm(root) -> GalaxyCDDPM:
    from tutorial_lib.artifacts import load_artifact, read_metadata
    from tutorial_lib.diffusion.galaxy import build_unet, restore
    from tutorial_lib.diffusion.schedule import make_schedule

    name = "galaxy-cddpm"
    config = _config_of(name, CDDPM_CONFIGS, root)
    label_names = tuple(read_metadata(name, root=root)["data"]["label_names"])
    model = eqx.filter_eval_shape(lambda: ConditionalUNet(build_unet(config), len(label_names)))
    ref, s = config["reference_samples"], config["image_size"]
    keys = ["unconditional"] + [f"{c}@{w:g}" for w in ref["guidance"] for c in label_names]
    like = {
        "model": _zeros_like_shapes(model, np.float16),
        "reference_samples": {k: np.zeros((ref["n"], s, s, 3), np.uint8) for k in keys},
    }
    tree, metadata = load_artifact(name, like, config=config, root=root)
    samples = {k: np.asarray(v, np.float32) / 255 for k, v in tree["reference_samples"].items()}
    schedule = make_schedule(config["schedule"])
    return GalaxyCDDPM(restore(tree["model"]), schedule, label_names, samples, metadata)


def _load(name: str, root):
    from tutorial_lib.artifacts import load_artifact

    if name == "galaxy-cddpm":
        return _load_cddpm(root)
    if name == "galaxy-gan":
        config = _config_of(name, GAN_CONFIGS, root)
        like = _zeros_like_shapes(eqx.filter_eval_shape(lambda: build_gan(config)[0]))
        tree, metadata = load_artifact(name, like, config=config, root=root)
        return GalaxyGAN(tree, metadata)

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
    """A shipped galaxy model by name: `"galaxy-vae"`, `"galaxy-flow"`, `"galaxy-ddpm"`,
    `"galaxy-gan"` or `"galaxy-cddpm"`.

    All have `.image_size`, `.metadata` and `.sample(key, n)` -> `(n, s, s, 3)` in `[0, 1]`;
    the conditional DDPM also `.label_names` and `.sample(key, n, label=..., guidance=...)`.
    `root` reads artifacts from another folder (default: `$JAXGENAI_ARTIFACTS`, else
    the ones shipped with the package).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if name == "galaxy-ddpm":
        from tutorial_lib.diffusion.galaxy import pretrained_galaxy_ddpm

        return pretrained_galaxy_ddpm(root=root)
    return _load(name, root)
