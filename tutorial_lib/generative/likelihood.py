"""The galaxy DDPM's likelihood in the units of Part IV: bits/dim through the probability flow.

A diffusion model is also a continuous normalizing flow: its probability-flow ODE maps data to
the Gaussian prior, and the instantaneous change of variables gives `log p(x)` (Song et al.
2021; the SDE chapter's `tutorial_lib.diffusion.sde.log_likelihood`). Here that machinery is
applied to the shipped galaxy DDPM, its schedule seen as a variance-preserving SDE
(`NoiseSchedule.sde`), with the same uniform dequantisation as the flow and the VAE.

Two approximations, both stated where the number is shown: the density is that of the data
noised to `t_min` (not exactly `t = 0`), and the divergence is Hutchinson's estimate with one
Rademacher probe per image (unbiased for the log-density, not for the bits of one image).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import ArrayLike, Float, PRNGKeyArray

from tutorial_lib.diffusion.galaxy import GalaxyDDPM
from tutorial_lib.diffusion.sde import log_likelihood, probe_vectors
from tutorial_lib.generative.bits import DEQUANTISATION_SEED, bits_per_dim, check_images, dequantise

__all__ = ["ddpm_bits_per_dim", "load_ddpm_bits"]


@eqx.filter_jit
def _log_likelihoods(model, sde, x, probes, t_min, tol):
    shape = x.shape[1:]

    def score(v, t):
        eps = model(v.reshape(shape), t)
        return -eps.reshape(-1) / sde.marginal_std(t)

    def one(xi, probe):
        out = log_likelihood(
            sde, score, xi.reshape(-1), probe=probe.reshape(-1), t_min=t_min, rtol=tol, atol=tol
        )
        return out.log_prob, out.num_steps

    return jax.vmap(one)(x, probes)


def ddpm_bits_per_dim(
    ddpm: GalaxyDDPM,
    images: ArrayLike,
    key: PRNGKeyArray,
    *,
    t_min: float = 1e-3,
    tol: float = 1e-3,
    dequantisation_seed: int = DEQUANTISATION_SEED,
) -> tuple[Float[np.ndarray, " n"], Float[np.ndarray, " n"]]:
    """Bits/dim of 8-bit images `(n, s, s, 3)` in [0, 1] under the DDPM's probability flow,
    and the number of ODE steps each took. `key` draws the Hutchinson probes; `tol` is the
    solver's relative and absolute tolerance. Costly: hundreds of U-Net Jacobian-vector
    products per image (about a minute per image on a two-core CPU).
    """
    x = check_images(images, image_size=ddpm.image_size, eight_bit=True)
    y = dequantise(jr.key(dequantisation_seed), x)
    model_space = jnp.transpose(2.0 * y - 1.0, (0, 3, 1, 2))  # [-1, 1], channels first
    probes = probe_vectors(key, model_space.shape)
    log_p, steps = _log_likelihoods(ddpm.model, ddpm.schedule.sde, model_space, probes, t_min, tol)
    dims = model_space[0].size
    # p_y(y) = p_x(2y - 1) * 2^D: the density of the [0, 1] image, as for the other models.
    log_p_y = np.asarray(log_p, np.float64) + dims * math.log(2.0)
    return np.asarray(bits_per_dim(log_p_y, dims)), np.asarray(steps)


def load_ddpm_bits(*, root=None) -> tuple[Float[np.ndarray, " n"], dict]:
    """The shipped per-galaxy bits/dim of the held-out galaxies under the galaxy DDPM
    (`python -m tutorial_lib.train galaxy-ddpm-bits`) and its metadata.

    Refused with an `ArtifactError` when the DDPM it evaluated is not the one shipped now.
    """
    from tutorial_lib.artifacts import ArtifactError, load_artifact, read_metadata

    metadata = read_metadata("galaxy-ddpm-bits", root=root)
    config = metadata.get("config") or {}
    n = len((metadata.get("data") or {}).get("heldout_ids", []))
    like = {"bits_per_dim": np.zeros(n, np.float32), "ode_steps": np.zeros(n, np.int32)}
    tree, metadata = load_artifact("galaxy-ddpm-bits", like, config=config, root=root)
    ddpm_sha = read_metadata("galaxy-ddpm", root=root)["files"]["weights.eqx"]["sha256"]
    if metadata["data"].get("ddpm_weights_sha256") != ddpm_sha:
        raise ArtifactError(
            "the shipped galaxy-ddpm-bits evaluated another galaxy DDPM than the one shipped "
            "now; recompute it with `python -m tutorial_lib.train galaxy-ddpm-bits`."
        )
    return np.asarray(tree["bits_per_dim"]), metadata
