"""Class-conditional diffusion with classifier-free guidance (Ho and Salimans 2022).

One network learns both the conditional and the unconditional model: the label enters as a
learned vector added to the U-Net's time embedding, and during training each label is replaced,
with probability `p_uncond`, by an extra **null label** (the label-dropout token), so the same
network also learns `eps(x, t, null)`, the unconditional prediction. At sampling time the two
are mixed with a guidance weight `w`:

$$
\\hat\\epsilon_w(x, t, c) = \\epsilon(x, t, \\varnothing)
    + w\\,[\\epsilon(x, t, c) - \\epsilon(x, t, \\varnothing)],
$$

so `w = 0` is the unconditional model, `w = 1` the plain conditional one, and `w > 1` pushes
samples towards what makes the class recognisable, at the cost of diversity. The mixture is
linear, so guiding the network's v-output and converting to a noise prediction afterwards
(`VPrediction`) is the same as guiding the noise prediction.

Single-image modules; batch with `jax.vmap`. Images are `(3, s, s)` in `[-1, 1]`, as in Part II.
"""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray

from tutorial_lib.diffusion.unet import UNet

__all__ = ["ConditionalUNet", "GuidedNet", "drop_labels"]


class ConditionalUNet(eqx.Module):
    """A U-Net with a label embedding: `net(x, t, label)`. Labels are `0 .. num_labels - 1`;
    `num_labels` itself is the null label (no class: the unconditional model).

    The embedding starts at zero, so a `ConditionalUNet` built around a trained unconditional
    U-Net predicts exactly what it did for every label: fine-tuning starts from that model.
    """

    net: UNet
    label_embedding: Float[Array, "labels_plus_one e"]

    def __init__(self, net: UNet, num_labels: int):
        if not (isinstance(num_labels, int) and num_labels >= 1):
            raise ValueError(f"num_labels must be a whole number >= 1, got {num_labels!r}")
        self.net = net
        self.label_embedding = jnp.zeros((num_labels + 1, net.embedding_dim))

    @property
    def num_labels(self) -> int:
        return self.label_embedding.shape[0] - 1

    @property
    def null_label(self) -> int:
        """The label-dropout token: the index of the unconditional model."""
        return self.num_labels

    @property
    def image_size(self) -> int:
        return self.net.image_size

    @property
    def channels(self) -> int:
        return self.net.channels

    def __call__(
        self,
        x: Float[Array, "c h w"],
        t: Float[Array, ""],
        label: Int[Array, ""],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "c h w"]:
        return self.net(x, t, cond=self.label_embedding[label], key=key)


def drop_labels(
    key: PRNGKeyArray, labels: Int[Array, " n"], null_label: int, p_uncond: float
) -> Int[Array, " n"]:
    """Each label replaced by `null_label` with probability `p_uncond` (label dropout)."""
    drop = jr.bernoulli(key, p_uncond, labels.shape)
    return jnp.where(drop, null_label, labels)


class GuidedNet(eqx.Module):
    """`ConditionalUNet` at one label and guidance weight `w`, seen as an unconditional network
    `net(x, t)`: `out(null) + w (out(label) - out(null))`. `label=None` is the unconditional
    model (one network call instead of two). Wrap it in `VPrediction` if the network predicts v.
    """

    model: ConditionalUNet
    label: Int[Array, ""] | None
    guidance: Float[Array, ""]

    def __init__(self, model: ConditionalUNet, label: int | None, guidance: float):
        self.model = model
        self.label = None if label is None else jnp.asarray(label, jnp.int32)
        self.guidance = jnp.asarray(guidance, jnp.float32)

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def channels(self) -> int:
        return self.model.channels

    def __call__(
        self, x: Float[Array, "c h w"], t: Float[Array, ""], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "c h w"]:
        null = self.model(x, t, jnp.asarray(self.model.null_label), key=key)
        if self.label is None:
            return null
        cond = self.model(x, t, self.label, key=key)
        return null + self.guidance * (cond - null)
