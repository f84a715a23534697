"""The PyTorch twin of the U-Net: same weights, same outputs, gradients and Adam step.

torch is a test-only dependency: these tests skip without it.
"""

import copy
import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from tutorial_lib.diffusion import torch_twin
from tutorial_lib.diffusion.galaxy import CPU_CONFIG, build_unet

torch = pytest.importorskip("torch")


def _config(attention: bool) -> dict:
    config = copy.deepcopy(CPU_CONFIG)
    config["image_size"] = 16
    config["batch_size"] = 4
    config["unet"].update(
        base_channels=16, channel_mults=[1, 2], attention_resolutions=[8] if attention else []
    )
    return config


@functools.cache
def _random_net(attention: bool, base_channels: int = 16):
    """A small U-Net with random weights (NumPy's, of std 0.1): at init the zeroed output
    convolution would hide every other layer from the output and the gradients, and JAX's
    initialisation compiles a program per weight shape, which takes seconds."""
    config = _config(attention)
    config["unet"]["base_channels"] = base_channels
    shapes = eqx.filter_eval_shape(build_unet, config, key=jr.key(0))
    rng = np.random.default_rng(0)

    def fill(leaf):
        if isinstance(leaf, jax.ShapeDtypeStruct):
            return jnp.asarray(0.1 * rng.standard_normal(leaf.shape), leaf.dtype)
        return leaf

    return jax.tree.map(fill, shapes, is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct))


def _batch(n: int = 4, size: int = 16):
    k_x, k_t, k_y = jr.split(jr.key(1), 3)
    x = jr.normal(k_x, (n, 3, size, size))
    return x, jr.uniform(k_t, (n,)), jr.normal(k_y, x.shape)


def _torch(*arrays):
    return [torch.tensor(np.asarray(a)) for a in arrays]


@pytest.mark.parametrize("attention", [True, False], ids=["attention", "no-attention"])
def test_twin_outputs_match(attention):
    net = _random_net(attention)
    twin = torch_twin.torch_unet(net)
    assert not twin.training
    x, t, _ = _batch()
    cond = 0.1 * jr.normal(jr.key(2), (4, net.embedding_dim))
    with torch.no_grad():
        out = twin(*_torch(x, t)).numpy()
        out_cond = twin(*_torch(x, t, cond)).numpy()
    batched = eqx.filter_jit(jax.vmap(lambda m, a, s, c: m(a, s, cond=c), (None, 0, 0, 0)))
    assert np.abs(out - np.asarray(batched(net, x, t, None))).max() <= 1e-4
    jax_cond = batched(net, x, t, cond)
    assert np.abs(out_cond - np.asarray(jax_cond)).max() <= 1e-4
    n_params = sum(p.numel() for p in twin.parameters())
    n_jax = sum(a.size for a in jax.tree.leaves(eqx.filter(net, eqx.is_inexact_array)))
    assert n_params == n_jax


@eqx.filter_jit
def _loss_and_grads(net, x, t, y):
    def loss(m):
        return jnp.mean((jax.vmap(m)(x, t) - y) ** 2)

    return eqx.filter_value_and_grad(loss)(net)


def test_twin_gradients_and_adam_step_match():
    net = _random_net(True)
    twin = torch_twin.torch_unet(net).train()
    x, t, y = _batch()
    loss, grads = _loss_and_grads(net, x, t, y)
    tx, tt, ty = _torch(x, t, y)
    # Adam's first step is lr g / (|g| + eps): with the usual eps = 1e-8 it is a sign function
    # that float32 rounding flips where a gradient is ~0; a larger eps keeps it smooth in g.
    lr, eps = 1e-3, 1e-4
    adam = torch.optim.Adam(twin.parameters(), lr=lr, eps=eps)
    torch_loss = torch.mean((twin(tx, tt) - ty) ** 2)
    torch_loss.backward()
    assert math.isclose(float(loss), torch_loss.item(), rel_tol=1e-5)
    pairs = [
        (grads.stem.weight, twin.stem.weight.grad),
        (grads.time_mlp[0].weight, twin.time_mlp[0].weight.grad),
        (grads.mid[1].attention.query_proj.weight, twin.mid[1].q.weight.grad),
        (grads.up_blocks[0][0].conv1.weight, twin.up_blocks[0][0].conv1.weight.grad),
    ]
    for g_jax, g_torch in pairs:
        g_jax, g_torch = np.asarray(g_jax), g_torch.numpy()
        assert np.abs(g_jax - g_torch).max() <= 1e-3 * np.abs(g_jax).max()

    # One Adam step from the same weights and gradients lands on the same weights.
    params = eqx.filter(net, eqx.is_inexact_array)
    optimiser = optax.adam(lr, eps=eps)
    updates, _ = optimiser.update(grads, optimiser.init(params), params)
    stepped = eqx.apply_updates(net, updates)
    adam.step()
    twin_after = torch_twin.torch_unet(stepped)
    after = dict(twin.named_parameters())
    for name, p in twin_after.named_parameters():
        assert np.abs(p.detach().numpy() - after[name].detach().numpy()).max() <= 1e-5, name


def test_compare_training_step_on_a_tiny_config():
    config = _config(True)
    config["unet"]["base_channels"] = 8
    net = _random_net(True, 8)
    result = torch_twin.compare_training_step(
        config, net=net, batch_size=2, repeat=1, matmul_size=256, profile=True
    )
    assert result.threads == torch_twin.cpu_threads() >= 1
    assert result.batch_size == 2
    for value in (result.jax_s, result.torch_s, result.flops, result.jax_gflops):
        assert math.isfinite(value) and value > 0
    assert result.peak_gflops > 0 and result.torch_gflops > 0
    assert result.loss_diff <= 1e-4
    # the profiles see the work: convolutions on both sides, in seconds of the right scale
    assert any("conv" in name for name in result.torch_ops), list(result.torch_ops)[:10]
    for ops, step_s in [(result.jax_ops, result.jax_s), (result.torch_ops, result.torch_s)]:
        assert ops and all(v >= 0 for v in ops.values())
        assert 0.1 * step_s < sum(ops.values()) < 20 * step_s * result.threads, (ops, step_s)


def test_torch_op_seconds_finds_the_matrix_product():
    a = torch.randn(512, 512)
    ops = torch_twin.torch_op_seconds(lambda: torch.tanh(a @ a), repeat=2)
    assert "mm" in next(iter(ops)), list(ops)[:5]  # the product dominates, and comes first
    with pytest.raises(ValueError, match="repeat"):
        torch_twin.torch_op_seconds(lambda: a, repeat=0)
