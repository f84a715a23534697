"""The book's galaxy DDPM: its fixed config, data preparation, and the shipped pretrained model.

`python -m tutorial_lib.train galaxy-ddpm` trains it (see `tutorial_lib/train/galaxy_ddpm.py`);
`pretrained_galaxy_ddpm()` loads the shipped weights (the EMA parameters, stored in float16 to
keep the artifact small and cast back to float32 on load).
"""

import dataclasses
import hashlib
from typing import Any, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from tutorial_lib.data import load_galaxies, random_dihedral
from tutorial_lib.diffusion.ddpm import SAMPLERS, SampleResult, VPrediction
from tutorial_lib.diffusion.schedule import NoiseSchedule, make_schedule
from tutorial_lib.diffusion.unet import UNet

__all__ = [
    "ARTIFACT",
    "CONFIGS",
    "CPU_CONFIG",
    "GPU_CONFIG",
    "GalaxyDDPM",
    "GalaxySplit",
    "ImageNoisePredictor",
    "as_noise_predictor",
    "augmented_batch",
    "build_unet",
    "galaxy_split",
    "pretrained_galaxy_ddpm",
    "profile_config",
    "restore",
    "store",
    "to_image_space",
    "to_model_space",
]

ARTIFACT = "galaxy-ddpm"

# The two configs a shipped model may have; `python -m tutorial_lib.train galaxy-ddpm` trains the
# one of the size profile in force (`tutorial_lib.config.profile`). The GPU config (64x64, 4.6M
# parameters) trains in about ten minutes on one H100; on a two-core CPU it would take days, so
# the CPU config trains a 32x32 model of 1.1M parameters (8,000 steps, about 80 min). The loader
# accepts either: whichever was trained last is the book's model, and its metadata says which.
GPU_CONFIG: dict[str, Any] = {
    "image_size": 64,
    "unet": {
        "base_channels": 32,
        "channel_mults": [1, 2, 2, 4],
        "num_res_blocks": 2,
        "attention_resolutions": [16, 8],
        "heads": 4,
        "groups": 8,
        "dropout": 0.1,
    },
    "schedule": "cosine",
    "prediction": "v",
    "data": {"source": "galaxy-zoo", "holdout_fraction": 0.1, "split_seed": 0},
    "batch_size": 128,
    "steps": 12_000,
    "learning_rate": 3e-4,
    "warmup_steps": 500,
    "grad_clip": 1.0,
    "ema_decay": 0.9995,
    "seed": 0,
    "stored_dtype": "float16",
    "reference_samples": {"n": 256, "sampler": "ddim", "steps": 100, "seed": 1},
}

CPU_CONFIG: dict[str, Any] = {
    "image_size": 32,
    "unet": {
        "base_channels": 32,
        "channel_mults": [1, 2, 2],
        "num_res_blocks": 1,
        "attention_resolutions": [8],
        "heads": 4,
        "groups": 8,
        "dropout": 0.0,
    },
    "schedule": "cosine",
    # The network predicts v, not eps: an eps-network trained this briefly recovers x0 at high
    # noise far worse than the data's mean image does (its error is divided by sqrt(abar)),
    # which gave over-bright, noisy galaxies.
    "prediction": "v",
    "data": {"source": "galaxy-zoo", "holdout_fraction": 0.1, "split_seed": 0},
    # Small batches and a larger step size: on a CPU the number of updates is what is scarce.
    "batch_size": 16,
    "steps": 8_000,
    "learning_rate": 1e-3,
    "warmup_steps": 200,
    "grad_clip": 1.0,
    "ema_decay": 0.999,
    "seed": 0,
    "stored_dtype": "float16",
    "reference_samples": {"n": 128, "sampler": "ddim", "steps": 50, "seed": 1},
}

CONFIGS: dict[str, dict[str, Any]] = {"cpu": CPU_CONFIG, "gpu": GPU_CONFIG}


def profile_config() -> dict[str, Any]:
    """The config `python -m tutorial_lib.train galaxy-ddpm` trains under the current profile."""
    from tutorial_lib.config import profile

    return CONFIGS[profile()]


def build_unet(config: dict[str, Any], *, key: PRNGKeyArray | None = None) -> UNet:
    """The U-Net of a galaxy config, initialised from `key` (default: the config's seed)."""
    u = config["unet"]
    return UNet(
        config["image_size"],
        base_channels=u["base_channels"],
        channel_mults=tuple(u["channel_mults"]),
        num_res_blocks=u["num_res_blocks"],
        attention_resolutions=tuple(u["attention_resolutions"]),
        heads=u["heads"],
        groups=u["groups"],
        dropout=u["dropout"],
        key=jr.key(config["seed"]) if key is None else key,
    )


def as_noise_predictor(net: UNet, config: dict[str, Any]) -> UNet | VPrediction:
    """The trained network as the samplers take it: a noise predictor eps(x, t)."""
    if config.get("prediction", "eps") == "v":
        return VPrediction(net, make_schedule(config["schedule"]))
    return net


# ----- data ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GalaxySplit:
    """The galaxy images of one config, split into training and held-out sets, with their ids
    and the sha256 of the data they came from."""

    train: Float[np.ndarray, "n s s 3"]  # in [0, 1]
    heldout: Float[np.ndarray, "m s s 3"]
    train_ids: list[str]
    heldout_ids: list[str]
    data_sha256: str


def galaxy_split(config: dict[str, Any]) -> GalaxySplit:
    """The real galaxy images split once, reproducibly, into training and held-out sets."""
    d = config["data"]
    galaxies = load_galaxies(config["image_size"], d["source"])
    order = np.random.default_rng(d["split_seed"]).permutation(len(galaxies))
    n_held = round(d["holdout_fraction"] * len(galaxies))
    held, train = np.sort(order[:n_held]), np.sort(order[n_held:])
    digest = hashlib.sha256(galaxies.images.tobytes()).hexdigest()
    return GalaxySplit(
        galaxies.images[train],
        galaxies.images[held],
        [galaxies.ids[i] for i in train],
        [galaxies.ids[i] for i in held],
        digest,
    )


def to_model_space(images: Float[Array, "n s s 3"]) -> Float[Array, "n 3 s s"]:
    """[0, 1] channels-last images -> [-1, 1] channels-first, as the network sees them."""
    return jnp.transpose(2.0 * images - 1.0, (0, 3, 1, 2))


def to_image_space(x: Float[Array, "n 3 s s"]) -> Float[Array, "n s s 3"]:
    return jnp.clip((jnp.transpose(x, (0, 2, 3, 1)) + 1.0) / 2.0, 0.0, 1.0)


def augmented_batch(key: PRNGKeyArray, images: Float[Array, "n s s 3"], batch_size: int):
    """A random batch under a random one of the 8 symmetries of the square, in model space."""
    k_idx, k_sym = jr.split(key)
    idx = jr.randint(k_idx, (batch_size,), 0, images.shape[0])
    return to_model_space(random_dihedral(k_sym, images[idx]))


# ----- the pretrained model ---------------------------------------------------------------


@runtime_checkable
class ImageNoisePredictor(Protocol):
    """What `GalaxyDDPM` samples with: a noise predictor `eps(x, t, *, key=None)` for images
    `(channels, image_size, image_size)` that knows that shape. A `UNet` trained on eps is one,
    and so is `VPrediction` (a v-network seen as a noise predictor)."""

    @property
    def image_size(self) -> int: ...

    @property
    def channels(self) -> int: ...

    def __call__(
        self, x: Float[Array, "c h w"], t: Float[Array, ""], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "c h w"]: ...


@dataclasses.dataclass(frozen=True, eq=False)
class GalaxyDDPM:
    """A trained galaxy diffusion model: `.sample(key, n)` -> `(n, size, size, 3)` in [0, 1].

    `.reference_samples` holds galaxies the trainer generated with the default sampler, for
    statistics that need more samples than a CPU page can afford to draw.
    """

    model: ImageNoisePredictor  # eps(x, t), whatever the network predicts (UNet, VPrediction)
    schedule: NoiseSchedule
    reference_samples: Float[np.ndarray, "k s s 3"]
    metadata: dict

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def sample(
        self, key: PRNGKeyArray, n: object, *, sampler: str = "ddim", steps: object = 100, **kwargs
    ) -> Float[Array, "{n} s s 3"]:
        """`n` new galaxies. Default: deterministic DDIM with 100 steps; `sampler` may be
        'ddpm' (ancestral, `steps` network calls), 'ddim' or 'ode' (adaptive Tsit5). `n` and
        `steps` are positive ints (NumPy integers too); anything else raises a `ValueError`."""
        return to_image_space(
            self.sample_with_info(key, n, sampler=sampler, steps=steps, **kwargs).images
        )

    def sample_with_info(
        self, key: PRNGKeyArray, n: object, *, sampler: str = "ddim", steps: object = 100, **kwargs
    ) -> SampleResult:
        """Like `sample`, returning the raw `SampleResult` (model space, NFE, trajectory)."""
        # `n` and `steps` are checked by the samplers themselves.
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}: use one of {sorted(SAMPLERS)}")
        if sampler != "ode":
            kwargs["steps"] = steps
        return _sample(self.model, self.schedule, key, n, sampler, tuple(sorted(kwargs.items())))


def _sample(model, schedule, key, n, sampler, kwargs):
    shape = (model.channels, model.image_size, model.image_size)
    return SAMPLERS[sampler](model, schedule, key, n, shape, **dict(kwargs))


def store(model: eqx.Module) -> eqx.Module:
    """The weights (of a U-Net, or any module) as shipped: float16 (half the bytes; sampling
    quality is unchanged)."""
    return jax.tree.map(lambda x: _cast(x, np.float16) if eqx.is_inexact_array(x) else x, model)


def restore(model: eqx.Module) -> eqx.Module:
    """The shipped float16 weights back in float32, for sampling and training."""
    return jax.tree.map(lambda x: _cast(x, np.float32) if eqx.is_inexact_array(x) else x, model)


def _stored_dtype(dtype):
    return np.float16 if jnp.issubdtype(dtype, jnp.inexact) else dtype


def _cast(x, dtype):
    # Cast in NumPy: a jnp cast compiles once per weight shape, seconds for a whole U-Net.
    return jnp.asarray(np.asarray(x).astype(dtype))


def pretrained_galaxy_ddpm(*, root=None) -> GalaxyDDPM:
    """The book's shipped galaxy DDPM, trained on SDSS Galaxy Zoo images (see its `.metadata`
    for the resolution, the hardware, the wall time and the held-out ids)."""
    from tutorial_lib.artifacts import ArtifactError, load_artifact, read_metadata

    recorded = read_metadata(ARTIFACT, root=root).get("config")
    known = [c for c in CONFIGS.values() if c["image_size"] == (recorded or {}).get("image_size")]
    if not known:
        raise ArtifactError(
            f"artifact {ARTIFACT!r} records image_size {(recorded or {}).get('image_size')!r}, "
            f"which neither the CPU nor the GPU config of this code has. "
            f"Rebuild it with `python -m tutorial_lib.train {ARTIFACT}`."
        )
    config = known[0]
    n_ref, s = config["reference_samples"]["n"], config["image_size"]
    shapes = eqx.filter_eval_shape(build_unet, config)
    skeleton = jax.tree.map(
        lambda x: (
            np.zeros(x.shape, _stored_dtype(x.dtype)) if isinstance(x, jax.ShapeDtypeStruct) else x
        ),
        shapes,
    )
    like = {"model": skeleton, "reference_samples": np.zeros((n_ref, s, s, 3), np.uint8)}
    tree, metadata = load_artifact(ARTIFACT, like, config=config, root=root)
    reference = np.asarray(tree["reference_samples"], dtype=np.float32) / 255.0
    model = as_noise_predictor(restore(tree["model"]), config)
    return GalaxyDDPM(model, make_schedule(config["schedule"]), reference, metadata)
