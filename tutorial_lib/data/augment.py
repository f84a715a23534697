"""The 8 symmetries of the square (dihedral group D4) as image augmentations.

Galaxy images have no preferred orientation or handedness on the sky, so every rotation by a
multiple of 90 degrees, with or without a mirror flip, is an equally valid image.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray

__all__ = [
    "N_DIHEDRAL",
    "all_dihedral",
    "dihedral",
    "random_dihedral",
]

N_DIHEDRAL = 8


def _symmetry(quarter_turns: int, mirror: bool):
    def apply(x):
        y = jnp.rot90(x, quarter_turns, axes=(0, 1))
        return jnp.flip(y, axis=1) if mirror else y

    return apply


_SYMMETRIES = [_symmetry(r, m) for m in (False, True) for r in range(4)]


def dihedral(image: Float[Array, "h w c"], k: int | Int[Array, ""]) -> Float[Array, "h w c"]:
    """Symmetry `k` in 0..7 of a square image: rotate by `k % 4` quarter turns, then mirror
    left-right if `k >= 4`. `k` may be traced (works under `jit`/`vmap`)."""
    return jax.lax.switch(jnp.asarray(k, dtype=jnp.int32) % N_DIHEDRAL, _SYMMETRIES, image)


def all_dihedral(image: Float[Array, "h w c"]) -> Float[Array, "8 h w c"]:
    """All 8 symmetries of one square image, in the order of `dihedral`'s `k`."""
    return jax.vmap(dihedral, in_axes=(None, 0))(image, jnp.arange(N_DIHEDRAL))


def random_dihedral(key: PRNGKeyArray, images: Float[Array, "n h w c"]) -> Float[Array, "n h w c"]:
    """Apply an independent uniformly random symmetry to each image of a batch."""
    ks = jr.randint(key, (images.shape[0],), 0, N_DIHEDRAL)
    return jax.vmap(dihedral)(images, ks)
