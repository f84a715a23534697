"""A shared test helper: a random ESM2 filled from NumPy."""

import jax
import jax.numpy as jnp
import numpy as np

from tutorial_lib.protein import ESM2, ESM2Config, esm2_skeleton


def random_esm2(config: ESM2Config, seed: int) -> ESM2:
    """A random ESM2 filled from NumPy: no JAX compilation, unlike `ESM2(config, key=...)`."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), s.dtype),
        esm2_skeleton(config),
    )
