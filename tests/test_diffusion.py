"""Noise schedules, the U-Net, DDPM training and the three samplers."""

import ast
import importlib
import re
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from gaussian_eps import GaussianEps, GaussianV

from tutorial_lib.diffusion import (
    CosineSchedule,
    LinearSchedule,
    UNet,
    VPrediction,
    ancestral_sample,
    count_parameters,
    ddim_sample,
    ddpm_loss,
    ema_update,
    init_train_state,
    make_schedule,
    make_train_step,
    ode_sample,
    time_grid,
)

SCHEDULES = [LinearSchedule(), CosineSchedule()]


# ----- schedules ---------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["linear", "cosine"])
def test_schedule_runs_from_data_to_noise(schedule):
    t = jnp.linspace(0.0, 1.0, 101)
    abar = jax.vmap(schedule.alpha_bar)(t)
    assert abs(float(abar[0]) - 1.0) < 1e-6
    assert float(abar[-1]) < 1e-4
    assert bool(jnp.all(jnp.diff(abar) < 0))
    a, s = jax.vmap(schedule.signal_and_noise)(t[1:])
    np.testing.assert_allclose(a**2 + s**2, 1.0, atol=1e-6)


def test_linear_schedule_matches_the_vp_sde_closed_form():
    # abar(t) = exp(-int_0^t beta), beta(t) = beta_min + t (beta_max - beta_min).
    s, t = LinearSchedule(), 0.37
    expected = np.exp(-(0.1 * t + 0.5 * (20.0 - 0.1) * t**2))
    np.testing.assert_allclose(float(s.alpha_bar(t)), expected, rtol=1e-6)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["linear", "cosine"])
def test_time_of_noise_to_signal_inverts_noise_to_signal(schedule):
    t = jnp.linspace(0.01, 0.99, 25)
    back = jax.vmap(schedule.time_of_noise_to_signal)(jax.vmap(schedule.noise_to_signal)(t))
    np.testing.assert_allclose(back, t, atol=1e-5)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["linear", "cosine"])
def test_forward_marginal_matches_closed_form(schedule):
    # q(x_t | x0) = N(sqrt(abar) x0, (1 - abar) I): check mean and variance by sampling.
    x0, t, n = jnp.asarray(0.8), 0.4, 200_000
    eps = jr.normal(jr.key(0), (n,))
    xt = schedule.add_noise(x0, eps, t)
    abar = float(schedule.alpha_bar(t))
    se = np.sqrt((1 - abar) / n)
    assert abs(float(xt.mean()) - np.sqrt(abar) * 0.8) < 5 * se
    assert abs(float(xt.var()) - (1 - abar)) < 5 * (1 - abar) * np.sqrt(2 / n)


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown noise schedule 'quadratic'"):
        make_schedule("quadratic")


# ----- the U-Net ---------------------------------------------------------------------------


def tiny_unet(key=None, **kw):
    options = dict(
        base_channels=8,
        channel_mults=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(4,),
        heads=2,
        groups=4,
    )
    return UNet(8, **(options | kw), key=jr.key(0) if key is None else key)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3, "padding": 1},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        {"kernel_size": 1},
    ],
    ids=["3x3", "3x3-stride-2", "1x1"],
)
def test_channels_last_conv_matches_equinox(kwargs):
    from tutorial_lib.diffusion.unet import conv

    layer = eqx.nn.Conv2d(5, 7, key=jr.key(0), **kwargs)
    x = jr.normal(jr.key(1), (5, 9, 9))
    np.testing.assert_allclose(conv(layer, x), layer(x), rtol=1e-5, atol=1e-5)


def test_unet_keeps_the_shape_and_starts_at_zero():
    model = tiny_unet()
    x = jr.normal(jr.key(1), (3, 8, 8))
    out = eqx.filter_jit(model)(x, jnp.asarray(0.3))
    assert out.shape == x.shape
    # The output convolution's weights start at zero: the untrained network predicts the same
    # (bias) value at every pixel, whatever the input.
    assert float(jnp.ptp(out, axis=(1, 2)).max()) == 0.0
    assert count_parameters(model) == sum(
        v.size for v in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    )


def test_unet_depends_on_time_and_dropout_needs_a_key():
    model = tiny_unet(dropout=0.5)
    # Give the output layer weights so the network is not identically zero.
    model = jax.tree.map(lambda v: v + 0.05 if eqx.is_inexact_array(v) else v, model)
    x = jr.normal(jr.key(1), (3, 8, 8))
    f = eqx.filter_jit(lambda m, t, key=None: m(x, t, key=key))
    a, b = f(model, jnp.asarray(0.1)), f(model, jnp.asarray(0.9))
    assert float(jnp.abs(a - b).max()) > 1e-3
    np.testing.assert_array_equal(f(model, jnp.asarray(0.1)), a)  # no key: deterministic
    assert float(jnp.abs(f(model, jnp.asarray(0.1), key=jr.key(2)) - a).max()) > 1e-3


def test_unet_rejects_bad_sizes_and_batches():
    with pytest.raises(ValueError, match="divisible"):
        UNet(10, channel_mults=(1, 2, 2), key=jr.key(0))
    model = tiny_unet()
    with pytest.raises(ValueError, match=r"use jax\.vmap for a batch"):
        model(jnp.zeros((4, 3, 8, 8)), jnp.asarray(0.5))


# ----- training ------------------------------------------------------------------------------


def test_ema_update_is_the_convex_combination():
    ema, new = {"w": jnp.ones(3)}, {"w": jnp.full(3, 3.0)}
    np.testing.assert_allclose(ema_update(ema, new, 0.9)["w"], 0.9 * 1 + 0.1 * 3)


class TinyEps(eqx.Module):
    """A small MLP eps(x, t) for one-pixel 'images', shape (1, 1, 1)."""

    mlp: eqx.nn.MLP

    def __init__(self, key):
        self.mlp = eqx.nn.MLP(3, 1, 64, 2, activation=jax.nn.silu, key=key)

    def __call__(self, x, t, *, key=None):
        a, n = SCHEDULES[1].signal_and_noise(t)
        return self.mlp(jnp.stack([x.reshape(()), a, n])).reshape(1, 1, 1)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["linear", "cosine"])
def test_v_prediction_wrapper_turns_the_exact_v_into_the_exact_eps(schedule):
    wrapped = VPrediction(GaussianV(schedule, 0.3, 0.5), schedule)
    exact = GaussianEps(schedule, 0.3, 0.5)
    x = jnp.linspace(-3.0, 3.0, 13).reshape(-1, 1, 1, 1)
    for t in (0.01, 0.3, 0.7, 0.99):
        np.testing.assert_allclose(
            jax.vmap(wrapped, in_axes=(0, None))(x, jnp.asarray(t)),
            jax.vmap(exact, in_axes=(0, None))(x, jnp.asarray(t)),
            rtol=1e-5,
            atol=1e-6,
        )


def test_unknown_prediction_target_is_refused():
    with pytest.raises(ValueError, match="prediction must be one of"):
        ddpm_loss(TinyEps(jr.key(0)), SCHEDULES[1], jnp.zeros((4, 1, 1, 1)), jr.key(0),
                  prediction="x0")  # fmt: skip
    with pytest.raises(ValueError, match="prediction must be one of"):
        make_train_step(SCHEDULES[1], optax.adam(1e-3), lambda k, d: d, prediction="score")


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_ddpm_loss_learns_the_noise_predictor_of_a_gaussian(prediction):
    schedule, mu, sd = SCHEDULES[1], 0.3, 0.5
    exact = GaussianEps(schedule, mu, sd)
    optimiser = optax.adam(3e-3)
    state = init_train_state(TinyEps(jr.key(0)), optimiser)
    step = make_train_step(
        schedule,
        optimiser,
        lambda k, _: mu + sd * jr.normal(k, (256, 1, 1, 1)),
        ema_decay=0.99,
        prediction=prediction,
    )
    for i in range(1500):
        state, loss = step(jnp.zeros(()), state, jr.key(i))
    model = state.model if prediction == "eps" else VPrediction(state.model, schedule)
    x = jnp.linspace(-2.0, 2.0, 41).reshape(-1, 1, 1, 1)
    for t in (0.2, 0.5, 0.8):
        tt = jnp.asarray(t)
        pred = jax.vmap(model, in_axes=(0, None))(x, tt)
        target = jax.vmap(exact, in_axes=(0, None))(x, tt)
        rel = float(jnp.mean((pred - target) ** 2) / jnp.mean(target**2))
        assert rel < 0.02, (t, rel)
    # The loss itself approaches its floor (E||eps - E[eps|x_t]||^2 for eps), not zero.
    assert 0.05 < float(loss) < 1.0


def test_train_step_with_and_without_scan_agree():
    model = TinyEps(jr.key(0))
    schedule = SCHEDULES[1]
    optimiser = optax.adam(1e-3)
    data = jr.uniform(jr.key(3), (16, 1, 1, 1), minval=-1, maxval=1)
    prepare = lambda k, d: d[jr.randint(k, (4,), 0, d.shape[0])]  # noqa: E731
    one = make_train_step(schedule, optimiser, prepare, steps_per_call=1)
    three = make_train_step(schedule, optimiser, prepare, steps_per_call=3)
    a = init_train_state(model, optimiser)
    for k in jr.split(jr.key(4), 3):
        a, _ = one(data, a, k)
    b, _ = three(data, init_train_state(model, optimiser), jr.key(4))
    assert int(a.step) == int(b.step) == 3
    for u, v in zip(
        jax.tree.leaves(eqx.filter(a.model, eqx.is_array)),
        jax.tree.leaves(eqx.filter(b.model, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_allclose(u, v, atol=1e-5)


# ----- samplers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampler", "kwargs", "nfe"),
    [
        (ddim_sample, {"steps": 50}, 50),
        (ancestral_sample, {"steps": 200}, 200),
        (ode_sample, {}, None),
    ],
    ids=["ddim", "ddpm", "ode"],
)
def test_samplers_draw_from_the_data_distribution(sampler, kwargs, nfe):
    schedule, mu, sd = SCHEDULES[1], 0.2, 0.3
    result = sampler(GaussianEps(schedule, mu, sd), schedule, jr.key(0), 512, (1, 4, 4), **kwargs)
    x = np.asarray(result.images).ravel()  # 8,192 draws (correlated only through the sampler)
    assert abs(x.mean() - mu) < 0.02
    assert abs(x.std() - sd) < 0.02
    if nfe is not None:
        assert result.nfe == nfe
    else:
        assert 8 < int(result.nfe) < 400


def test_ddim_with_many_steps_approaches_the_ode_sampler():
    # Both are deterministic maps of the same starting noise: DDIM is Euler's method on the
    # probability-flow ODE, so its error shrinks like 1 / steps.
    schedule = SCHEDULES[1]
    model = GaussianEps(schedule, 0.2, 0.3)
    x1 = jr.normal(jr.key(5), (64, 1, 2, 2))
    ode = ode_sample(
        model, schedule, jr.key(0), 64, (1, 2, 2), x_init=x1, rtol=1e-6, atol=1e-6, clip=False
    ).images
    gaps = [
        float(
            jnp.abs(
                ddim_sample(
                    model, schedule, jr.key(0), 64, (1, 2, 2), steps=s, x_init=x1, clip=False
                ).images
                - ode
            ).max()
        )
        for s in (8, 40, 200)
    ]
    # First order: five times the steps, about a fifth of the error.
    assert gaps[2] < 0.02
    assert gaps[0] / gaps[1] > 3 and gaps[1] / gaps[2] > 3, gaps


def test_trajectory_keeps_evenly_spaced_x0_predictions():
    schedule = SCHEDULES[1]
    model = GaussianEps(schedule, 0.2, 0.3)
    result = ddim_sample(model, schedule, jr.key(0), 16, (1, 2, 2), steps=20, keep=5)
    assert result.nfe == 20 and result.trajectory.shape == (5, 16, 1, 2, 2)
    # The last prediction, at t = 1/20, is where DDIM's final step lands (abar(0) ~ 1).
    np.testing.assert_allclose(result.trajectory[-1], result.images, atol=1e-3)
    # At t = 1 the best guess of x0 is close to the data mean; later guesses spread out.
    spread = result.trajectory.std(axis=(1, 2, 3, 4))
    assert spread[0] < 0.1 < spread[-1]
    assert (
        ddim_sample(model, schedule, jr.key(0), 2, (1, 2, 2), steps=3, keep=5).trajectory.shape[0]
        == 5
    )


def test_time_grid_and_sampler_input_errors():
    np.testing.assert_allclose(time_grid(4), [1.0, 0.75, 0.5, 0.25, 0.0])
    with pytest.raises(ValueError, match="at least one sampling step"):
        time_grid(0)
    schedule = SCHEDULES[1]
    with pytest.raises(ValueError, match=r"\(channels, height, width\)"):
        ddim_sample(GaussianEps(schedule, 0.0, 1.0), schedule, jr.key(0), 2, (4, 4))


# ----- the package's layout ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tutorial_lib" / "diffusion"
# What a Part II page may import: its own package, the data, and the book's infrastructure.
PAGE_IMPORTS = ("diffusion", "data", "config", "artifacts", "benchmark", "check_setup")


def _imports(tree):
    """(module, name, level) of every `from module import name`; (module, None, 0) of `import`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield from ((node.module, a.name, node.level) for a in node.names)
        elif isinstance(node, ast.Import):
            yield from ((a.name, None, 0) for a in node.names)


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_diffusion_modules_export_all_and_import_absolutely(path):
    tree = ast.parse(path.read_text())
    module = importlib.import_module(
        f"tutorial_lib.diffusion.{path.stem}".removesuffix(".__init__")
    )
    assert isinstance(getattr(module, "__all__", None), list), f"{path.name} has no __all__"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{path.name}: __all__ names {missing} that do not exist"
    for source, name, level in _imports(tree):
        assert level == 0, f"{path.name}: relative import (the package imports absolutely)"
        if source and source.startswith("tutorial_lib") and name:
            assert not name.startswith("_"), f"{path.name} imports the private {source}.{name}"


def test_part_ii_reexports_are_part_i_objects():
    from tutorial_lib import diffusion
    from tutorial_lib.jax_science import sampling

    for name in ["annealed_langevin", "geometric_sigmas", "nearest_mode_fractions"]:
        assert getattr(diffusion, name) is getattr(sampling, name)


def _code_cells(page):
    """The page's code cells, parsed (an IPython magic line becomes `pass`)."""
    for cell in re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", page.read_text(), re.M | re.S):
        lines = cell.splitlines()
        if lines and lines[0].strip() == "---":  # a YAML block of cell options
            lines = lines[lines.index("---", 1) + 1 :]
        while lines and re.match(r"^:[\w-]+:", lines[0]):  # `:tags:` and other options
            lines = lines[1:]
        yield ast.parse("\n".join(re.sub(r"^(\s*)%.*", r"\1pass", ln) for ln in lines))


@pytest.mark.parametrize(
    "page", sorted((ROOT / "docs" / "diffusion").glob("*.md")), ids=lambda p: p.stem
)
def test_part_ii_pages_import_only_their_library(page):
    found = set()
    for source, name, _ in (i for cell in _code_cells(page) for i in _imports(cell)):
        if source == "tutorial_lib" and name is not None:
            found.add(name)  # from tutorial_lib import config
        elif source and source.startswith("tutorial_lib."):
            found.add(source.split(".")[1])  # from tutorial_lib.diffusion import ...
    assert found, f"{page.name} imports nothing from tutorial_lib"
    assert found <= set(PAGE_IMPORTS), f"{page.name} imports {sorted(found - set(PAGE_IMPORTS))}"


def test_channels_last_group_norm_matches_equinox():
    from tutorial_lib.diffusion.unet import group_norm_hwc

    norm = eqx.nn.GroupNorm(4, 12)
    norm = eqx.tree_at(
        lambda n: (n.weight, n.bias),
        norm,
        (jr.normal(jr.key(2), (12,)), jr.normal(jr.key(3), (12,))),
    )
    x = 3.0 + 2.0 * jr.normal(jr.key(1), (12, 5, 7))
    got = group_norm_hwc(norm, jnp.transpose(x, (1, 2, 0)))
    np.testing.assert_allclose(jnp.transpose(got, (2, 0, 1)), norm(x), rtol=1e-5, atol=1e-5)


def _block_reference(blk, x, emb):
    """A residual block written channels-first with Equinox's own layers."""
    h = blk.conv1(jax.nn.silu(blk.norm1(x)))
    h = h + blk.time_proj(jax.nn.silu(emb))[:, None, None]
    h = blk.conv2(jax.nn.silu(blk.norm2(h)))
    return h + (x if blk.skip is None else blk.skip(x))


def _attention_reference(att, x):
    c, h, w = x.shape
    tokens = att.norm(x).reshape(c, h * w).T
    return x + att.attention(tokens, tokens, tokens).T.reshape(c, h, w)


def test_channels_last_unet_equals_a_channels_first_reference():
    model = _perturbed(tiny_unet())
    x, t = jr.normal(jr.key(1), (3, 8, 8)), jnp.asarray(0.3)
    out = eqx.filter_jit(model)(x, t)
    expected = eqx.filter_jit(_unet_reference)(model, x, t)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def _perturbed(model):
    """Noise added to every weight (in NumPy: a JAX op would compile once per weight shape),
    so that the zero-initialised layers do not hide any path."""
    rng = np.random.default_rng(4)

    def perturb(a):
        if not eqx.is_inexact_array(a):
            return a
        return jnp.asarray(np.asarray(a) + 0.05 * rng.standard_normal(a.shape).astype(a.dtype))

    return jax.tree.map(perturb, model)


def _unet_reference(model, x, t):
    """The U-Net written channels-first with Equinox's own layers, block by block."""
    from tutorial_lib.diffusion.unet import sinusoidal_embedding

    emb = model.time_mlp[1](
        jax.nn.silu(model.time_mlp[0](sinusoidal_embedding(t, model.base_channels)))
    )
    h = model.stem(x)
    hs = [h]
    for blocks, attns, down in zip(
        model.down_blocks, model.down_attn, model.downsamples, strict=True
    ):
        for blk, att in zip(blocks, attns, strict=True):
            h = _block_reference(blk, h, emb)
            h = h if att is None else _attention_reference(att, h)
            hs.append(h)
        if down is not None:
            h = down(h)
            hs.append(h)
    h = _block_reference(model.mid[0], h, emb)
    h = _block_reference(model.mid[2], _attention_reference(model.mid[1], h), emb)
    for blocks, attns, up in zip(model.up_blocks, model.up_attn, model.upsamples, strict=True):
        for blk, att in zip(blocks, attns, strict=True):
            h = _block_reference(blk, jnp.concatenate([h, hs.pop()], axis=0), emb)
            h = h if att is None else _attention_reference(att, h)
        if up is not None:
            h = up.conv(jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2))
    return model.out_conv(jax.nn.silu(model.out_norm(h)))


def test_channels_first_block_calls_equal_the_reference():
    model = _perturbed(tiny_unet())
    blk, att = model.mid[0], model.mid[1]
    h, emb = jr.normal(jr.key(1), (16, 4, 4)), jr.normal(jr.key(2), (model.embedding_dim,))
    got = eqx.filter_jit(lambda b, a, h, e: a(b(h, e)))(blk, att, h, emb)
    expected = eqx.filter_jit(
        lambda b, a, h, e: _attention_reference(a, _block_reference(b, h, e))
    )(blk, att, h, emb)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
