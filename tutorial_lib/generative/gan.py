"""Generative adversarial networks (Goodfellow et al. 2014): losses, penalties, networks, a step.

A generator `G(z)` maps noise to samples; a discriminator (critic) `D(x)` scores how real a
sample looks. Both are trained against each other:

- **non-saturating** GAN: `D` minimises the logistic loss of telling real from fake;
  `G` minimises `-log sigmoid(D(G(z)))`, which, unlike the minimax `log(1 - sigmoid(D))`, still
  has a gradient when `D` confidently rejects the fakes (Goodfellow et al. 2014).
- **WGAN-GP** (Gulrajani et al. 2017): `D` is a critic estimating the Wasserstein-1 distance,
  `E[D(fake)] - E[D(real)]`, kept 1-Lipschitz by penalising `(||grad_x D(x)|| - 1)^2` at
  random points between real and fake samples.
- **R1** (Mescheder et al. 2018): the non-saturating loss plus `||grad_x D(x)||^2` on real data.

Both penalties need the gradient of the critic's output with respect to *each input
separately*: `jax.vmap(jax.grad(critic))` (`input_gradient_norms`), differentiated again by the
outer `jax.grad` of the training step.

Critics and generators are single-sample functions; batches are `jax.vmap`-ed. Images are
channels first `(3, s, s)` in `[-1, 1]`.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

__all__ = [
    "LOSSES",
    "MLP",
    "ConvCritic",
    "ConvGenerator",
    "GANState",
    "critic_loss",
    "generator_loss",
    "init_gan_state",
    "input_gradient_norms",
    "make_gan_step",
    "mode_coverage",
    "r1_penalty",
    "ring_of_gaussians",
    "wgan_gradient_penalty",
]

LOSSES = ("non-saturating", "wgan-gp")

Critic = Callable[[Array], Float[Array, ""]]


def input_gradient_norms(critic: Critic, x: Float[Array, "n ..."]) -> Float[Array, " n"]:
    """`||grad_x critic(x_i)||` for each input `x_i` on its own (a per-example gradient)."""
    grads = jax.vmap(jax.grad(critic))(x)
    return jnp.sqrt(jnp.sum(grads.reshape(len(x), -1) ** 2, axis=1) + 1e-12)


def wgan_gradient_penalty(
    critic: Critic, real: Float[Array, "n ..."], fake: Float[Array, "n ..."], key: PRNGKeyArray
) -> Float[Array, ""]:
    """WGAN-GP's penalty: mean of `(||grad D(x_hat)|| - 1)^2` at `x_hat = e real + (1 - e)
    fake`, one `e ~ U(0, 1)` per pair (Gulrajani et al. 2017)."""
    eps = jr.uniform(key, (len(real),) + (1,) * (real.ndim - 1))
    mixed = eps * real + (1 - eps) * fake
    return jnp.mean((input_gradient_norms(critic, mixed) - 1.0) ** 2)


def r1_penalty(critic: Critic, real: Float[Array, "n ..."]) -> Float[Array, ""]:
    """R1: mean of `||grad D(x)||^2` on real data (Mescheder et al. 2018)."""
    return jnp.mean(input_gradient_norms(critic, real) ** 2)


def _check_loss(loss: str) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def critic_loss(
    critic: Critic,
    real: Float[Array, "n ..."],
    fake: Float[Array, "n ..."],
    key: PRNGKeyArray,
    *,
    loss: str = "non-saturating",
    penalty: float = 0.0,
) -> Float[Array, ""]:
    """The discriminator's loss on a batch: logistic (`"non-saturating"`, with `penalty` times
    R1) or Wasserstein (`"wgan-gp"`, with `penalty` times the gradient penalty)."""
    _check_loss(loss)
    d_real, d_fake = jax.vmap(critic)(real), jax.vmap(critic)(fake)
    if loss == "wgan-gp":
        value = jnp.mean(d_fake) - jnp.mean(d_real)
        return value + penalty * wgan_gradient_penalty(critic, real, fake, key)
    value = jnp.mean(jax.nn.softplus(-d_real)) + jnp.mean(jax.nn.softplus(d_fake))
    return value + (0.5 * penalty * r1_penalty(critic, real) if penalty else 0.0)


def generator_loss(
    critic: Critic, fake: Float[Array, "n ..."], *, loss: str = "non-saturating"
) -> Float[Array, ""]:
    """The generator's loss: `-log sigmoid(D(fake))` (non-saturating) or `-D(fake)` (WGAN)."""
    _check_loss(loss)
    d_fake = jax.vmap(critic)(fake)
    if loss == "wgan-gp":
        return -jnp.mean(d_fake)
    return jnp.mean(jax.nn.softplus(-d_fake))


# ----- networks --------------------------------------------------------------------------


class MLP(eqx.Module):
    """A small fully connected network for the 2-D toy problems (generator or critic)."""

    layers: list[eqx.nn.Linear]

    def __init__(self, d_in: int, d_out: int, width: int = 128, depth: int = 3, *, key):
        keys = jr.split(key, depth + 1)
        sizes = [d_in] + [width] * depth + [d_out]
        self.layers = [
            eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        ]

    def __call__(self, x: Float[Array, " d"]) -> Float[Array, "*o"]:
        """The output vector; a scalar when `d_out == 1` (a critic's score)."""
        for layer in self.layers[:-1]:
            x = jax.nn.leaky_relu(layer(x), 0.2)
        out = self.layers[-1](x)
        return out[0] if out.shape == (1,) else out


class ConvGenerator(eqx.Module):
    """DCGAN-style generator (Radford et al. 2016): `z` -> a 4x4 feature map -> repeated
    (nearest-neighbour upsampling, 3x3 convolution, group norm, leaky ReLU) -> `tanh` image.
    Upsampling + convolution instead of transposed convolutions avoids checkerboard artefacts
    (Odena et al. 2016)."""

    project: eqx.nn.Linear
    convs: list[eqx.nn.Conv2d]
    norms: list[eqx.nn.GroupNorm]
    out: eqx.nn.Conv2d
    latent_dim: int = eqx.field(static=True)
    image_size: int = eqx.field(static=True)
    widths: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, latent_dim: int, image_size: int, width: int = 64, *, key):
        levels = (image_size // 4).bit_length() - 1
        if image_size < 8 or 4 * 2**levels != image_size:
            raise ValueError(f"image_size must be 4 times a power of 2, >= 8; got {image_size}")
        keys = jr.split(key, levels + 2)
        self.latent_dim, self.image_size = latent_dim, image_size
        self.widths = tuple(width * 2 ** max(levels - i - 1, 0) for i in range(levels + 1))
        self.project = eqx.nn.Linear(latent_dim, self.widths[0] * 16, key=keys[0])
        self.convs = [
            eqx.nn.Conv2d(a, b, 3, padding=1, key=k)
            for a, b, k in zip(self.widths[:-1], self.widths[1:], keys[1:-1], strict=True)
        ]
        self.norms = [eqx.nn.GroupNorm(min(8, w), w) for w in self.widths[1:]]
        self.out = eqx.nn.Conv2d(self.widths[-1], 3, 3, padding=1, key=keys[-1])

    def __call__(self, z: Float[Array, " d"]) -> Float[Array, "3 s s"]:
        h = jax.nn.leaky_relu(self.project(z).reshape(self.widths[0], 4, 4), 0.2)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
            h = jax.nn.leaky_relu(norm(conv(h)), 0.2)
        return jnp.tanh(self.out(h))


class ConvCritic(eqx.Module):
    """DCGAN-style discriminator: strided 4x4 convolutions with leaky ReLU down to 4x4, then
    a linear score. No normalisation, so each example is scored on its own (the penalties
    need per-example gradients)."""

    convs: list[eqx.nn.Conv2d]
    head: eqx.nn.Linear

    def __init__(self, image_size: int, width: int = 64, *, key):
        levels = (image_size // 4).bit_length() - 1
        keys = jr.split(key, levels + 2)
        widths = [width * 2**i for i in range(levels + 1)]
        self.convs = [eqx.nn.Conv2d(3, widths[0], 3, padding=1, key=keys[0])] + [
            eqx.nn.Conv2d(a, b, 4, stride=2, padding=1, key=k)
            for a, b, k in zip(widths[:-1], widths[1:], keys[1:-1], strict=True)
        ]
        self.head = eqx.nn.Linear(widths[-1] * 16, 1, key=keys[-1])

    def __call__(self, x: Float[Array, "3 s s"]) -> Float[Array, ""]:
        for conv in self.convs:
            x = jax.nn.leaky_relu(conv(x), 0.2)
        return self.head(x.reshape(-1))[0]


# ----- training ----------------------------------------------------------------------------


class GANState(eqx.Module):
    generator: eqx.Module
    critic: eqx.Module
    ema_generator: eqx.Module
    g_opt_state: PyTree
    d_opt_state: PyTree
    step: Array


def init_gan_state(generator, critic, g_opt, d_opt) -> GANState:
    copy = lambda tree: jax.tree.map(lambda x: jnp.array(x) if eqx.is_array(x) else x, tree)  # noqa: E731
    return GANState(
        generator,
        critic,
        copy(generator),
        g_opt.init(eqx.filter(generator, eqx.is_inexact_array)),
        d_opt.init(eqx.filter(critic, eqx.is_inexact_array)),
        jnp.array(0),
    )


def make_gan_step(
    sample_real: Callable[[PRNGKeyArray, Array], Array],
    latent_dim: int,
    batch_size: int,
    g_opt: optax.GradientTransformation,
    d_opt: optax.GradientTransformation,
    *,
    loss: str = "non-saturating",
    penalty: float = 0.0,
    critic_steps: int = 1,
    ema_decay: float = 0.999,
    steps_per_call: int = 1,
):
    """A jitted `step(data, state, key) -> (state, (d_loss, g_loss))`: `critic_steps` updates of
    the critic, then one of the generator, and an exponential moving average of the generator
    (its samples are steadier than the last iterate's; Yazici et al. 2019).
    `sample_real(key, data)` draws a batch of real samples. With `steps_per_call > 1` one call
    runs that many steps in a `lax.scan` (keys split from `key`) and returns the last losses:
    one Python round trip per chunk instead of per step."""
    _check_loss(loss)
    if (
        isinstance(steps_per_call, bool)
        or not isinstance(steps_per_call, int)
        or steps_per_call < 1
    ):
        raise ValueError(f"steps_per_call must be a positive int, got {steps_per_call!r}")

    def fake(generator, key):
        return jax.vmap(generator)(jr.normal(key, (batch_size, latent_dim)))

    def d_update(data, state: GANState, key):
        k_real, k_fake, k_pen = jr.split(key, 3)

        def objective(critic):
            return critic_loss(
                critic, real, fake(state.generator, k_fake), k_pen, loss=loss, penalty=penalty
            )

        real = sample_real(k_real, data)
        value, grads = eqx.filter_value_and_grad(objective)(state.critic)
        params = eqx.filter(state.critic, eqx.is_inexact_array)
        updates, opt_state = d_opt.update(grads, state.d_opt_state, params)
        critic = eqx.apply_updates(state.critic, updates)
        return eqx.tree_at(lambda s: (s.critic, s.d_opt_state), state, (critic, opt_state)), value

    def one_step(data, state: GANState, key):
        keys = jr.split(key, critic_steps + 1)
        for k in keys[:-1]:
            state, d_value = d_update(data, state, k)

        def objective(generator):
            return generator_loss(state.critic, fake(generator, keys[-1]), loss=loss)

        g_value, grads = eqx.filter_value_and_grad(objective)(state.generator)
        params = eqx.filter(state.generator, eqx.is_inexact_array)
        updates, g_opt_state = g_opt.update(grads, state.g_opt_state, params)
        generator = eqx.apply_updates(state.generator, updates)
        decay = jnp.minimum(ema_decay, (1.0 + state.step) / (10.0 + state.step))
        ema_p = jax.tree.map(
            lambda e, p: decay * e + (1 - decay) * p,
            eqx.filter(state.ema_generator, eqx.is_inexact_array),
            eqx.filter(generator, eqx.is_inexact_array),
        )
        ema = eqx.combine(
            ema_p, eqx.filter(state.ema_generator, eqx.is_inexact_array, inverse=True)
        )
        new = GANState(generator, state.critic, ema, g_opt_state, state.d_opt_state, state.step + 1)
        return new, (d_value, g_value)

    if steps_per_call == 1:
        return eqx.filter_jit(one_step)

    @eqx.filter_jit
    def steps(data, state: GANState, key):
        # Only arrays may ride in a scan carry; static leaves (activations) stay outside.
        arrays, static = eqx.partition(state, eqx.is_array)

        def body(a, k):
            new_state, values = one_step(data, eqx.combine(a, static), k)
            return eqx.filter(new_state, eqx.is_array), values

        arrays, (d_values, g_values) = jax.lax.scan(body, arrays, jr.split(key, steps_per_call))
        return eqx.combine(arrays, static), (d_values[-1], g_values[-1])

    return steps


# ----- a 2-D toy with known modes ------------------------------------------------------------


def ring_of_gaussians(
    key: PRNGKeyArray, n: int, modes: int = 8, radius: float = 2.0, std: float = 0.05
) -> Float[Array, "n 2"]:
    """`n` points from `modes` equal Gaussians of width `std` spaced around a circle: the
    standard test of mode collapse (Metz et al. 2017)."""
    k_mode, k_noise = jr.split(key)
    angle = 2 * jnp.pi * jr.randint(k_mode, (n,), 0, modes) / modes
    centres = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    return centres + std * jr.normal(k_noise, (n, 2))


def mode_coverage(
    samples: Float[Array, "n 2"],
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.05,
    *,
    min_share: float = 0.01,
) -> tuple[int, float]:
    """`(modes covered, share of good samples)` of 2-D samples against `ring_of_gaussians`: a
    sample is good if within `3 std` of a mode's centre; a mode is covered if at least
    `min_share` of all samples are good samples of it (Metz et al. 2017; Srivastava et al. 2017).
    """
    angle = 2 * jnp.pi * jnp.arange(modes) / modes
    centres = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    dist = jnp.linalg.norm(samples[:, None, :] - centres[None], axis=-1)
    nearest, good = jnp.argmin(dist, axis=1), jnp.min(dist, axis=1) < 3 * std
    counts = jnp.bincount(jnp.where(good, nearest, modes), length=modes + 1)[:modes]
    return int(jnp.sum(counts >= min_share * len(samples))), float(jnp.mean(good))
