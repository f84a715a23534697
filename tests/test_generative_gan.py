"""Part IV, second half: GAN losses and gradient penalties, classifier-free guidance, and the
comparison measurements (Fréchet distance, precision/recall, the morphology judge)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from tutorial_lib.diffusion.ddpm import ddpm_loss
from tutorial_lib.diffusion.schedule import make_schedule
from tutorial_lib.diffusion.unet import UNet
from tutorial_lib.generative import compare, conditional, gan

# --- gradient penalties ------------------------------------------------------------------------


def _critic(key):
    return gan.MLP(3, 1, width=16, depth=2, key=key)


def _finite_difference_norm(fn, x, h=1e-3):
    x = np.asarray(x, np.float64)
    grad = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        grad.append((float(fn(jnp.asarray(x + e))) - float(fn(jnp.asarray(x - e)))) / (2 * h))
    return np.linalg.norm(grad)


def test_input_gradient_norms_match_finite_differences():
    critic = _critic(jr.key(0))
    x = jr.normal(jr.key(1), (4, 3))
    norms = gan.input_gradient_norms(critic, x)
    expected = [_finite_difference_norm(critic, xi) for xi in np.asarray(x)]
    np.testing.assert_allclose(norms, expected, rtol=2e-2)


def test_wgan_gradient_penalty_is_the_mean_squared_excess_at_the_interpolates():
    critic = _critic(jr.key(2))
    real, fake = jr.normal(jr.key(3), (5, 3)), 2 + jr.normal(jr.key(4), (5, 3))
    key = jr.key(5)
    eps = np.asarray(jr.uniform(key, (5, 1)))
    mixed = eps * np.asarray(real) + (1 - eps) * np.asarray(fake)
    expected = np.mean([(_finite_difference_norm(critic, m) - 1) ** 2 for m in mixed])
    penalty = gan.wgan_gradient_penalty(critic, real, fake, key)
    assert float(penalty) == pytest.approx(expected, rel=3e-2)


def test_penalties_of_a_linear_critic():
    w = jnp.array([3.0, 4.0, 0.0])  # |grad| = 5 everywhere

    def critic(x):
        return x @ w

    x = jr.normal(jr.key(0), (6, 3))
    assert float(gan.r1_penalty(critic, x)) == pytest.approx(25.0, rel=1e-5)
    assert float(gan.wgan_gradient_penalty(critic, x, -x, jr.key(1))) == pytest.approx(16.0)


def test_losses_of_an_undecided_critic():
    def critic(x):
        return 0.0 * jnp.sum(x)

    real, fake = jnp.ones((4, 2)), jnp.zeros((4, 2))
    d = gan.critic_loss(critic, real, fake, jr.key(0))
    assert float(d) == pytest.approx(2 * math.log(2), rel=1e-6)
    assert float(gan.generator_loss(critic, fake)) == pytest.approx(math.log(2), rel=1e-6)
    assert float(gan.critic_loss(critic, real, fake, jr.key(0), loss="wgan-gp")) == 0.0
    with pytest.raises(ValueError, match="loss must be one of"):
        gan.critic_loss(critic, real, fake, jr.key(0), loss="minimax")


def test_mode_coverage_counts_modes():
    ring = gan.ring_of_gaussians(jr.key(0), 4000, std=0.02)
    assert gan.mode_coverage(ring, std=0.02)[0] == 8
    assert gan.mode_coverage(ring, std=0.02)[1] > 0.98
    angle = 2 * jnp.pi * jnp.array([0, 1, 5]) / 8
    three = 2 * jnp.stack([jnp.cos(angle), jnp.sin(angle)], 1)
    collapsed = jnp.repeat(three, 100, axis=0) + 0.01 * jr.normal(jr.key(1), (300, 2))
    assert gan.mode_coverage(collapsed, std=0.02)[0] == 3


def test_gan_step_learns_a_shifted_gaussian():
    """Non-saturating GAN with R1 moves a generator's mean onto the data's in 1-D."""
    g, d = gan.MLP(1, 1, 16, 2, key=jr.key(0)), gan.MLP(1, 1, 16, 2, key=jr.key(1))
    g = eqx.tree_at(lambda m: m.layers[-1].bias, g, jnp.zeros(1))

    class Vector(eqx.Module):
        net: gan.MLP
        latent_dim: int = 1

        def __call__(self, z):
            return jnp.atleast_1d(self.net(z))

    opt = optax.adam(2e-3, b1=0.5)
    state = gan.init_gan_state(Vector(g), d, opt, opt)
    step = gan.make_gan_step(
        lambda k, data: 3.0 + 0.5 * jr.normal(k, (128, 1)), 1, 128, opt, opt, penalty=1.0
    )
    for i in range(600):
        state, _ = step(None, state, jr.key(i))
    x = jax.vmap(state.ema_generator)(jr.normal(jr.key(99), (2000, 1)))
    assert float(jnp.mean(x)) == pytest.approx(3.0, abs=0.4)


def test_several_steps_per_call_are_the_same_steps():
    opt = optax.adam(1e-3, b1=0.5, b2=0.9)
    state = gan.init_gan_state(
        gan.MLP(2, 2, 16, key=jr.key(0)), gan.MLP(2, 1, 16, key=jr.key(1)), opt, opt
    )
    kwargs = dict(loss="wgan-gp", penalty=0.1, critic_steps=2)
    real = lambda k, _: gan.ring_of_gaussians(k, 64)  # noqa: E731
    one = gan.make_gan_step(real, 2, 64, opt, opt, **kwargs)
    five = gan.make_gan_step(real, 2, 64, opt, opt, steps_per_call=5, **kwargs)
    looped = state
    for k in jr.split(jr.key(2), 5):
        looped, last = one(None, looped, k)
    scanned, last_scanned = five(None, state, jr.key(2))
    assert int(scanned.step) == 5
    for a, b in zip(jax.tree.leaves(eqx.filter(looped, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(scanned, eqx.is_array)), strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(last, last_scanned, rtol=1e-4)
    with pytest.raises(ValueError, match="steps_per_call must be a positive int"):
        gan.make_gan_step(real, 2, 64, opt, opt, steps_per_call=0)


def test_conv_generator_and_critic_shapes():
    g = gan.ConvGenerator(8, 16, width=8, key=jr.key(0))
    d = gan.ConvCritic(16, width=8, key=jr.key(1))
    x = g(jnp.zeros(8))
    assert x.shape == (3, 16, 16) and float(jnp.max(jnp.abs(x))) <= 1.0
    assert d(x).shape == ()
    with pytest.raises(ValueError, match="4 times a power of 2"):
        gan.ConvGenerator(8, 24, key=jr.key(0))


# --- classifier-free guidance ------------------------------------------------------------------


def _tiny_unet():
    net = UNet(8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
               attention_resolutions=(), dropout=0.0, key=jr.key(0))  # fmt: skip
    # Move the zero-initialised output layers so the network is not trivially zero.
    leaves, treedef = jax.tree.flatten(net)
    keys = jr.split(jr.key(7), len(leaves))
    leaves = [
        x + 0.1 * jr.normal(k, x.shape) if eqx.is_inexact_array(x) else x
        for x, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, leaves)


def _trained_embedding(model):
    emb = jr.normal(jr.key(3), model.label_embedding.shape)
    return eqx.tree_at(lambda m: m.label_embedding, model, emb)


def test_conditional_unet_starts_as_the_unconditional_network():
    net = _tiny_unet()
    model = conditional.ConditionalUNet(net, 2)
    x, t = jr.normal(jr.key(1), (3, 8, 8)), jnp.array(0.4)
    for label in (0, 1, model.null_label):
        np.testing.assert_allclose(model(x, t, jnp.array(label)), net(x, t), atol=1e-6)
    assert model.null_label == 2


def test_guidance_zero_is_the_unconditional_prediction_and_one_the_conditional():
    model = _trained_embedding(conditional.ConditionalUNet(_tiny_unet(), 2))
    x, t = jr.normal(jr.key(1), (3, 8, 8)), jnp.array(0.6)
    null = model(x, t, jnp.array(model.null_label))
    cond = model(x, t, jnp.array(1))
    assert float(jnp.max(jnp.abs(cond - null))) > 1e-3  # the label matters
    np.testing.assert_allclose(conditional.GuidedNet(model, 1, 0.0)(x, t), null, atol=1e-6)
    np.testing.assert_allclose(conditional.GuidedNet(model, None, 3.0)(x, t), null, atol=1e-6)
    np.testing.assert_allclose(conditional.GuidedNet(model, 1, 1.0)(x, t), cond, atol=1e-5)
    np.testing.assert_allclose(
        conditional.GuidedNet(model, 1, 3.0)(x, t), null + 3 * (cond - null), atol=1e-5
    )


def test_label_dropout_replaces_labels_by_the_null_token_only():
    labels = jnp.array([0, 1] * 2000)
    dropped = conditional.drop_labels(jr.key(0), labels, 2, 0.2)
    is_null = dropped == 2
    assert float(jnp.mean(is_null)) == pytest.approx(0.2, abs=0.02)
    np.testing.assert_array_equal(dropped[~is_null], labels[~is_null])
    np.testing.assert_array_equal(conditional.drop_labels(jr.key(0), labels, 2, 0.0), labels)


def test_ddpm_loss_with_labels_uses_them():
    model = _trained_embedding(conditional.ConditionalUNet(_tiny_unet(), 2))
    x0 = jr.uniform(jr.key(1), (4, 3, 8, 8), minval=-1, maxval=1)
    schedule = make_schedule("cosine")

    def loss(c):
        return float(ddpm_loss(model, schedule, x0, jr.key(2), labels=jnp.array(c), dropout=False))

    assert loss([0, 0, 0, 0]) != loss([1, 1, 1, 1])
    plain = float(ddpm_loss(model.net, schedule, x0, jr.key(2), dropout=False))
    zero = eqx.tree_at(lambda m: m.label_embedding, model, jnp.zeros_like(model.label_embedding))
    assert float(
        ddpm_loss(zero, schedule, x0, jr.key(2), labels=jnp.zeros(4, int), dropout=False)
    ) == pytest.approx(plain, rel=1e-5)


# --- comparison measurements --------------------------------------------------------------------


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 1))
    b = 2.0 + 3.0 * rng.normal(size=(20000, 1))
    # 1-D: (m_a - m_b)^2 + (s_a - s_b)^2 = 4 + 4
    assert compare.frechet_distance(a, b) == pytest.approx(8.0, rel=0.03)
    x = rng.normal(size=(500, 4))
    assert compare.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        compare.frechet_distance(x, x[:, :3])


def test_precision_recall_known_cases():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(400, 2))
    assert compare.precision_recall(real, real) == (1.0, 1.0)
    far = real + 100.0
    assert compare.precision_recall(real, far) == (0.0, 0.0)
    # A collapsed model: everything it makes is realistic (precision ~1), but it covers only
    # the neighbourhood of one real point (recall ~0).
    collapsed = real[0] + 0.01 * rng.normal(size=(400, 2))
    precision, recall = compare.precision_recall(real, collapsed)
    assert precision > 0.95 and recall < 0.05
    # Half the modes of a two-mode mixture: full precision, about half the recall.
    two = np.concatenate([rng.normal(size=(300, 2)) - 10, rng.normal(size=(300, 2)) + 10])
    half = rng.normal(size=(300, 2)) - 10
    precision, recall = compare.precision_recall(two, half)
    assert precision > 0.9 and 0.35 < recall < 0.55
    with pytest.raises(ValueError, match="k must be"):
        compare.precision_recall(real, real, k=400)


def test_galaxy_features_are_whitened_on_their_training_set():
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(100, 4, 4, 3))
    features = compare.GalaxyFeatures.fit(images, dim=8)
    f = features(images)
    assert f.shape == (100, 8)
    np.testing.assert_allclose(f.std(axis=0), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="values each"):
        features(rng.uniform(size=(5, 8, 8, 3)))
