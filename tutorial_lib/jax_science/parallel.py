"""Data parallelism on a device mesh: a small MLP trained by SGD, one device or many.

`train_step` is the ordinary single-device step. Given a batch sharded over a mesh axis
and replicated parameters, `jax.jit` already partitions it across devices by itself (the
compiler inserts the all-reduce of the gradients). `make_data_parallel_step` writes the
same step by hand with `jax.shard_map`: each device computes the loss of its own slice
of the batch, `jax.lax.pmean` averages the losses over the mesh axis, and autodiff
of that average sums the gradients over the devices.

`describe_sharding`, `plot_sharding` and `collectives` show where an array's
pieces live and which communication the compiler inserted; `data_parallel_cost` splits the
time of a data-parallel step into its computation and its communication.
"""

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = [
    "DataParallelCost",
    "Params",
    "collectives",
    "data_parallel_cost",
    "describe_sharding",
    "init_mlp",
    "make_data_parallel_step",
    "mlp",
    "mse_loss",
    "plot_sharding",
    "replicate",
    "shard_batch",
    "train_step",
]

Params = list[dict[str, Array]]
"""An MLP's parameters: one `{"w": (d_in, d_out), "b": (d_out,)}` dict per layer."""

_COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


def init_mlp(key: PRNGKeyArray, sizes: Sequence[int]) -> Params:
    """Random parameters of an MLP with layer widths `sizes` (input first, output last)."""
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"sizes needs >= 2 positive widths (input ... output), got {sizes}.")
    keys = jr.split(key, len(sizes) - 1)
    return [
        {"w": jr.normal(k, (m, n)) / np.sqrt(m), "b": jnp.zeros(n)}
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp(params: Params, x: Float[Array, " d_in"]) -> Float[Array, " d_out"]:
    """The MLP on one input: `tanh` hidden layers, linear output layer."""
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def mse_loss(
    params: Params, x: Float[Array, "batch d_in"], y: Float[Array, "batch d_out"]
) -> Float[Array, ""]:
    """Mean squared error of the MLP over a batch."""
    return jnp.mean((jax.vmap(mlp, in_axes=(None, 0))(params, x) - y) ** 2)


@jax.jit
def train_step(
    params: Params,
    x: Float[Array, "batch d_in"],
    y: Float[Array, "batch d_out"],
    learning_rate: float | Float[Array, ""],
) -> tuple[Params, Float[Array, ""]]:
    """One SGD step on a batch; returns the new parameters and the loss before the step."""
    loss, grads = jax.value_and_grad(mse_loss)(params, x, y)
    return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), loss


def make_data_parallel_step(
    mesh: Mesh, axis: str = "data"
) -> Callable[..., tuple[Params, Float[Array, ""]]]:
    """`train_step` written per device with `shard_map`: batch split over `axis`.

    Each device sees `batch / mesh.shape[axis]` examples and the full (replicated)
    parameters. With equal slices, the mean over devices (`pmean`) of the per-device mean
    losses is the loss of the whole batch. Differentiating that global loss gives every device
    the full-batch gradient: the parameters enter replicated, and reverse-mode autodiff turns
    that broadcast into a sum over devices (an all-reduce) on the way back. So every device
    takes the same step as `train_step` would.
    """
    if axis not in mesh.axis_names:
        raise ValueError(f"mesh has axes {mesh.axis_names}, not {axis!r}.")
    n_shards = mesh.shape[axis]

    @jax.shard_map(mesh=mesh, in_specs=(P(), P(axis), P(axis), P()), out_specs=(P(), P()))
    def per_device(params, x, y, learning_rate):
        def global_loss(params):
            return jax.lax.pmean(mse_loss(params, x, y), axis)  # mean over all devices

        loss, grads = jax.value_and_grad(global_loss)(params)
        return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), loss

    @jax.jit
    def step(params, x, y, learning_rate):
        if x.shape[0] % n_shards:
            raise ValueError(
                f"the batch of {x.shape[0]} examples does not split evenly over the "
                f"{n_shards} devices of mesh axis {axis!r}: use a multiple of {n_shards}."
            )
        return per_device(params, x, y, jnp.asarray(learning_rate, x.dtype))

    return step


def shard_batch(mesh: Mesh, *arrays: Array, axis: str = "data") -> tuple[Array, ...]:
    """Place arrays on `mesh` split along their first (batch) axis over mesh axis `axis`."""
    sharding = NamedSharding(mesh, P(axis))
    return tuple(jax.device_put(a, sharding) for a in arrays)


def replicate(mesh: Mesh, tree):
    """Place a full copy of every leaf of `tree` on every device of `mesh`."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def _shard_table(array: Array) -> list[tuple[tuple[slice, ...], list[int]]]:
    """(index, device ids) for each distinct block of `array`, in device order."""
    blocks: dict[tuple, list[int]] = {}
    for shard in sorted(array.addressable_shards, key=lambda s: s.device.id):
        index = tuple(
            slice(*s.indices(n)[:2]) for s, n in zip(shard.index, array.shape, strict=True)
        )
        key = tuple((s.start, s.stop) for s in index)
        blocks.setdefault(key, []).append(shard.device.id)
    return [(tuple(slice(*k) for k in key), ids) for key, ids in blocks.items()]


def describe_sharding(array: Array) -> str:
    """One line per block of `array`: which slice it is and which devices hold a copy."""
    spec = getattr(array.sharding, "spec", type(array.sharding).__name__)
    lines = [f"{array.dtype}{list(array.shape)} with {spec}:"]
    for index, ids in _shard_table(array):
        where = ", ".join(f"{s.start}:{s.stop}" for s in index)
        lines.append(f"  [{where}] on device{'s' if len(ids) > 1 else ''} {ids}")
    return "\n".join(lines)


def plot_sharding(array: Array, ax, title: str | None = None) -> None:
    """Draw a 1-D or 2-D array as blocks labelled and coloured by the devices that hold them."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if array.ndim not in (1, 2):
        raise ValueError(f"plot_sharding draws 1-D or 2-D arrays, got shape {array.shape}.")
    rows, cols = (1, array.shape[0]) if array.ndim == 1 else array.shape
    cmap = plt.get_cmap("tab10")
    for index, ids in _shard_table(array):
        (r0, r1), (c0, c1) = (
            ((0, 1), (index[0].start, index[0].stop))
            if array.ndim == 1
            else (
                (index[0].start, index[0].stop),
                (index[1].start, index[1].stop),
            )
        )
        color = cmap(ids[0] % 10) if len(ids) < len(array.sharding.device_set) else "0.85"
        ax.add_patch(
            Rectangle((c0, r0), c1 - c0, r1 - r0, fc=color, alpha=0.75, ec="black", lw=1.5)
        )
        label = "all" if len(ids) == len(array.sharding.device_set) else ",".join(map(str, ids))
        ax.text((c0 + c1) / 2, (r0 + r1) / 2, label, ha="center", va="center", fontsize=9)
    ax.set(xlim=(0, cols), ylim=(rows, 0), xticks=[0, cols], yticks=[0, rows])
    ax.set(xlabel="column", ylabel="row" if array.ndim == 2 else None)
    if array.ndim == 1:
        ax.set(yticks=[], xlabel="index")
    ax.set_aspect("equal" if array.ndim == 2 else "auto")
    spec = getattr(array.sharding, "spec", type(array.sharding).__name__)
    ax.set_title(title if title is not None else str(spec), fontsize=10)


def collectives(fn: Callable, *args) -> list[str]:
    """The kinds of cross-device communication in the compiled program of `jit(fn)(*args)`."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    return sorted(set(re.findall("|".join(_COLLECTIVES), text)))


class DataParallelCost(NamedTuple):
    """Best wall times, in seconds, of the parts of one data-parallel step (`data_parallel_cost`).

    `step_s`: the whole step of `make_data_parallel_step`; `compute_s`: the same per-device
    forward and backward pass, each device keeping its own slice's gradient (no
    communication); `allreduce_s`: the all-reduce alone of a gradient-sized pytree;
    `gradient_bytes`: the bytes each device contributes to that all-reduce.
    """

    step_s: float
    compute_s: float
    allreduce_s: float
    gradient_bytes: int
    batch_per_device: int


def data_parallel_cost(
    mesh: Mesh,
    params: Params,
    x: Float[Array, "batch d_in"],
    y: Float[Array, "batch d_out"],
    *,
    axis: str = "data",
    repeat: int = 5,
) -> DataParallelCost:
    """Time a data-parallel SGD step and its two halves, computation and communication.

    The three programs are timed alternately (`benchmark.best_times`) on the same sharded
    batch and replicated parameters: the real step (`make_data_parallel_step`), a step in which
    every device differentiates its own slice's loss and never communicates, and a `psum` over
    `axis` of a pytree shaped like the gradients. The cost model of data parallelism reads
    `step_s ≈ compute_s + allreduce_s`: computation shrinks as the batch is split over more
    devices, while the all-reduce moves the whole gradient whatever the batch.
    """
    from tutorial_lib.benchmark import best_times

    if axis not in mesh.axis_names:
        raise ValueError(f"mesh has axes {mesh.axis_names}, not {axis!r}.")
    n_shards = mesh.shape[axis]
    if x.shape[0] % n_shards:
        raise ValueError(
            f"the batch of {x.shape[0]} examples does not split evenly over the {n_shards} "
            f"devices of mesh axis {axis!r}: use a multiple of {n_shards}."
        )
    step = make_data_parallel_step(mesh, axis)

    @jax.jit
    @jax.shard_map(mesh=mesh, in_specs=(P(), P(axis), P(axis)), out_specs=P(axis))
    def local_only(params, x, y):
        # Each device's own gradient, never reduced; its squared norm (one number per device)
        # is returned so that the compiler cannot skip computing it.
        grads = jax.grad(mse_loss)(params, x, y)
        return sum(jnp.sum(g**2) for g in jax.tree.leaves(grads))[None]

    @jax.jit
    @jax.shard_map(mesh=mesh, in_specs=P(axis), out_specs=P())
    def allreduce(stacked):
        return jax.tree.map(lambda a: jax.lax.psum(a[0], axis), stacked)

    replicated = replicate(mesh, params)
    xs, ys = shard_batch(mesh, x, y, axis=axis)
    # One gradient-shaped pytree per device, stacked along the mesh axis.
    per_device = jax.device_put(
        jax.tree.map(lambda p: jnp.broadcast_to(p, (n_shards, *p.shape)), params),
        NamedSharding(mesh, P(axis)),
    )
    times = best_times(
        {
            "step": lambda: step(replicated, xs, ys, 0.01),
            "compute": lambda: local_only(replicated, xs, ys),
            "allreduce": lambda: allreduce(per_device),
        },
        repeat=repeat,
    )
    return DataParallelCost(
        step_s=times["step"],
        compute_s=times["compute"],
        allreduce_s=times["allreduce"],
        gradient_bytes=int(sum(p.size * p.dtype.itemsize for p in jax.tree.leaves(params))),
        batch_per_device=x.shape[0] // n_shards,
    )
