"""Tests for `jax_science.parallel`, on the devices available and on 8 simulated CPU devices."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from tutorial_lib.jax_science import parallel


@pytest.fixture(scope="module")
def problem():
    params = parallel.init_mlp(jr.key(0), [1, 16, 1])
    x = jr.uniform(jr.key(1), (64, 1), minval=-2.0, maxval=2.0)
    return params, x, jnp.sin(3.0 * x)


def test_init_mlp_shapes_and_errors():
    params = parallel.init_mlp(jr.key(0), [3, 5, 2])
    assert [jax.tree.map(jnp.shape, layer) for layer in params] == [
        {"w": (3, 5), "b": (5,)},
        {"w": (5, 2), "b": (2,)},
    ]
    with pytest.raises(ValueError, match="widths"):
        parallel.init_mlp(jr.key(0), [3])
    with pytest.raises(ValueError, match="widths"):
        parallel.init_mlp(jr.key(0), [3, 0, 1])


def test_mlp_on_a_linear_network_is_the_affine_map():
    params = [{"w": jnp.array([[2.0], [-1.0]]), "b": jnp.array([0.5])}]
    np.testing.assert_allclose(parallel.mlp(params, jnp.array([3.0, 4.0])), [2.5])


def test_train_step_is_gradient_descent_and_lowers_the_loss(problem):
    params, x, y = problem
    loss0, grads = jax.value_and_grad(parallel.mse_loss)(params, x, y)
    new, loss = parallel.train_step(params, x, y, 0.1)
    np.testing.assert_allclose(loss, loss0)
    np.testing.assert_allclose(new[0]["w"], params[0]["w"] - 0.1 * grads[0]["w"], rtol=1e-6)
    for _ in range(200):
        params, loss = parallel.train_step(params, x, y, 0.1)
    assert float(loss) < 0.5 * float(loss0)


def test_data_parallel_step_matches_single_device_on_available_devices(problem):
    params, x, y = problem
    mesh = jax.make_mesh((len(jax.devices()),), ("data",))
    step = parallel.make_data_parallel_step(mesh)
    expected, expected_loss = parallel.train_step(params, x, y, 0.1)
    got, loss = step(parallel.replicate(mesh, params), *parallel.shard_batch(mesh, x, y), 0.1)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bad_mesh_axis_and_shapes_raise():
    mesh = jax.make_mesh((len(jax.devices()),), ("data",))
    with pytest.raises(ValueError, match="not 'batch'"):
        parallel.make_data_parallel_step(mesh, axis="batch")
    with pytest.raises(ValueError, match="1-D or 2-D"):
        parallel.plot_sharding(jnp.zeros((2, 2, 2)), None)


def test_describe_sharding_on_one_device():
    text = parallel.describe_sharding(jnp.zeros((4, 3)))
    assert "[0:4, 0:3] on device [0]" in text


EIGHT_DEVICES = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, jax.random as jr, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from tutorial_lib.jax_science import parallel

    assert len(jax.devices()) == 8, jax.devices()
    mesh = jax.make_mesh((8,), ("data",))
    params = parallel.init_mlp(jr.key(0), [1, 16, 1])
    x = jr.uniform(jr.key(1), (64, 1), minval=-2.0, maxval=2.0)
    y = jnp.sin(3.0 * x)
    expected, expected_loss = parallel.train_step(params, x, y, 0.1)

    xs, ys = parallel.shard_batch(mesh, x, y)
    ps = parallel.replicate(mesh, params)
    assert len({s.device for s in xs.addressable_shards}) == 8
    assert xs.addressable_shards[3].data.shape == (8, 1)

    step = parallel.make_data_parallel_step(mesh)
    for fn in (parallel.train_step, step):  # jit's partitioning, then shard_map by hand
        got, loss = fn(ps, xs, ys, 0.1)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
            assert a.sharding.is_fully_replicated
        assert parallel.collectives(fn, ps, xs, ys, 0.1) == ["all-reduce"]
    assert parallel.collectives(parallel.train_step, params, x, y, 0.1) == []

    try:
        step(params, x[:12], y[:12], 0.1)
    except ValueError as error:
        assert "multiple of 8" in str(error)
    else:
        raise AssertionError("an uneven batch was accepted")

    grid = jax.device_put(jnp.zeros((8, 8)), NamedSharding(jax.make_mesh((4, 2), ("a", "b")),
                                                            P(None, "b")))
    text = parallel.describe_sharding(grid)
    assert "[0:8, 0:4] on devices [0, 2, 4, 6]" in text, text
    print("OK")
    """
)


def test_data_parallel_training_on_eight_simulated_devices():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    result = subprocess.run(
        [sys.executable, "-c", EIGHT_DEVICES], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "OK", result.stderr[-3000:]


COST_ON_EIGHT_DEVICES = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, jax.random as jr
    from tutorial_lib.jax_science import parallel

    mesh = jax.make_mesh((8,), ("data",))
    params = parallel.init_mlp(jr.key(0), [32, 256, 256, 1])
    n_params = 32 * 256 + 256 + 256 * 256 + 256 + 256 + 1
    costs = []
    for b in (4, 1024):
        x = jr.normal(jr.key(1), (8 * b, 32))
        costs.append(parallel.data_parallel_cost(mesh, params, x, x[:, :1], repeat=3))
    small, large = costs
    assert small.gradient_bytes == 4 * n_params, small
    assert (small.batch_per_device, large.batch_per_device) == (4, 1024)
    for c in costs:
        assert 0 < c.compute_s < 5 and 0 < c.allreduce_s < 5 and 0 < c.step_s < 5, c
    # computation grows with the batch (256 times the examples; fixed overheads keep the ratio
    # far below that); the all-reduce moves the same gradient either way
    assert large.compute_s > 2 * small.compute_s, costs
    assert large.allreduce_s < 3 * small.allreduce_s + 1e-3, costs
    try:
        parallel.data_parallel_cost(mesh, params, x[:12], x[:12, :1])
    except ValueError as error:
        assert "multiple of 8" in str(error)
    else:
        raise AssertionError("an uneven batch was accepted")
    print("OK")
    """
)


def test_data_parallel_cost_on_eight_simulated_devices():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu"
    )
    result = subprocess.run(
        [sys.executable, "-c", COST_ON_EIGHT_DEVICES],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "OK", result.stderr[-3000:]
