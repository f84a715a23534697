"""A PyTorch twin of the book's U-Net, with the same weights, and one training step timed in both.

`torch_unet(unet)` builds a `torch.nn.Module` of the same architecture as a `unet.UNet` and
copies every Equinox weight into it (both keep convolution weights as OIHW), so the two
networks compute the same function of a batch `(x, t)`. `compare_training_step` times one
training step (forward, backward, Adam update) of each on the same random batch, with the same
number of CPU threads, and turns the FLOPs XLA counts in the compiled step into GFLOP/s, next
to a measured float32 matmul rate, the machine's practical peak.

torch is imported inside the functions (it is in the `test` and `docs` extras), so this module
imports without it.
"""

import contextlib
import math
import os
import sys
import time
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, PRNGKeyArray

from tutorial_lib.benchmark import best_times, xla_op_seconds
from tutorial_lib.diffusion.unet import ResBlock, SelfAttention, UNet, Upsample

__all__ = [
    "TrainingStepTiming",
    "compare_training_step",
    "cpu_threads",
    "matmul_peak_gflops",
    "torch_op_seconds",
    "torch_unet",
]


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("the PyTorch twin needs torch: pip install -e '.[test]'") from e
    return torch


def _tensor(x: Array) -> Any:
    torch = _torch()
    return torch.nn.Parameter(torch.tensor(np.array(x, dtype=np.float32)))


def _conv(layer: eqx.nn.Conv2d) -> Any:
    torch = _torch()
    (top, bottom), (left, right) = layer.padding
    if top != bottom or left != right:
        raise ValueError(f"asymmetric padding {layer.padding} has no torch.nn.Conv2d twin")
    out = torch.nn.Conv2d(
        layer.in_channels,
        layer.out_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=(top, left),
        dilation=layer.dilation,
        groups=layer.groups,
        bias=layer.bias is not None,
    )
    out.weight = _tensor(layer.weight)
    if layer.bias is not None:
        out.bias = _tensor(layer.bias.reshape(-1))
    return out


def _linear(layer: eqx.nn.Linear) -> Any:
    torch = _torch()
    out = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    out.weight = _tensor(layer.weight)
    if layer.bias is not None:
        out.bias = _tensor(layer.bias)
    return out


def _group_norm(layer: eqx.nn.GroupNorm) -> Any:
    torch = _torch()
    if layer.weight is None or layer.bias is None:
        raise ValueError("the twin expects group norms with a channelwise affine map")
    out = torch.nn.GroupNorm(layer.groups, layer.channels, eps=layer.eps)
    out.weight = _tensor(layer.weight)
    out.bias = _tensor(layer.bias)
    return out


def _twin_classes() -> dict[str, type]:
    """The torch modules, defined on first use so that torch is imported only then."""
    if _CLASSES:
        return _CLASSES
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    class TorchResBlock(nn.Module):
        def __init__(self, block: ResBlock):
            super().__init__()
            self.norm1, self.conv1 = _group_norm(block.norm1), _conv(block.conv1)
            self.time_proj = _linear(block.time_proj)
            self.norm2, self.conv2 = _group_norm(block.norm2), _conv(block.conv2)
            self.skip = None if block.skip is None else _conv(block.skip)
            self.dropout = nn.Dropout(block.dropout)

        def forward(self, x, emb):
            h = self.conv1(F.silu(self.norm1(x)))
            h = h + self.time_proj(F.silu(emb))[:, :, None, None]
            h = self.conv2(self.dropout(F.silu(self.norm2(h))))
            return h + (x if self.skip is None else self.skip(x))

    class TorchSelfAttention(nn.Module):
        def __init__(self, block: SelfAttention):
            super().__init__()
            a = block.attention
            self.norm = _group_norm(block.norm)
            self.heads = a.num_heads
            self.q, self.k = _linear(a.query_proj), _linear(a.key_proj)
            self.v, self.out = _linear(a.value_proj), _linear(a.output_proj)

        def forward(self, x):
            n, c, h, w = x.shape
            tokens = self.norm(x).reshape(n, c, h * w).transpose(1, 2)

            def heads(proj):
                return proj(tokens).reshape(n, h * w, self.heads, -1).transpose(1, 2)

            attn = F.scaled_dot_product_attention(heads(self.q), heads(self.k), heads(self.v))
            out = self.out(attn.transpose(1, 2).reshape(n, h * w, -1))
            return x + out.transpose(1, 2).reshape(n, c, h, w)

    class TorchUpsample(nn.Module):
        def __init__(self, block: Upsample):
            super().__init__()
            self.conv = _conv(block.conv)

        def forward(self, x):
            return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))

    def optional(module, make):
        return nn.Identity() if module is None else make(module)

    class TorchUNet(nn.Module):
        """The twin of a `unet.UNet`, on batches: `forward(x, t, cond=None)` with x of shape
        `(n, channels, size, size)`, t of shape `(n,)` and cond `(n, embedding_dim)`."""

        def __init__(self, unet: UNet):
            super().__init__()
            self.base_channels = unet.base_channels
            half = unet.base_channels // 2
            # The embedding's frequencies as JAX computes them, so that sin(1000 t f) agrees.
            freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half) / (half - 1))
            self.register_buffer("freqs", torch.tensor(np.asarray(freqs)))
            self.time_mlp = nn.ModuleList([_linear(m) for m in unet.time_mlp])
            self.stem = _conv(unet.stem)
            self.down_blocks = nn.ModuleList(
                nn.ModuleList(TorchResBlock(b) for b in level) for level in unet.down_blocks
            )
            self.down_attn = nn.ModuleList(
                nn.ModuleList(optional(a, TorchSelfAttention) for a in level)
                for level in unet.down_attn
            )
            self.downsamples = nn.ModuleList(optional(d, _conv) for d in unet.downsamples)
            self.mid = nn.ModuleList(
                [
                    TorchResBlock(unet.mid[0]),
                    TorchSelfAttention(unet.mid[1]),
                    TorchResBlock(unet.mid[2]),
                ]
            )
            self.up_blocks = nn.ModuleList(
                nn.ModuleList(TorchResBlock(b) for b in level) for level in unet.up_blocks
            )
            self.up_attn = nn.ModuleList(
                nn.ModuleList(optional(a, TorchSelfAttention) for a in level)
                for level in unet.up_attn
            )
            self.upsamples = nn.ModuleList(optional(u, TorchUpsample) for u in unet.upsamples)
            self.out_norm, self.out_conv = _group_norm(unet.out_norm), _conv(unet.out_conv)

        def forward(self, x, t, cond=None):
            angles = (1000.0 * t)[:, None] * self.freqs
            emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
            emb = self.time_mlp[1](F.silu(self.time_mlp[0](emb)))
            if cond is not None:
                emb = emb + cond
            h = self.stem(x)
            hs = [h]
            for blocks, attns, down in zip(
                self.down_blocks, self.down_attn, self.downsamples, strict=True
            ):
                for blk, att in zip(blocks, attns, strict=True):
                    h = att(blk(h, emb))
                    hs.append(h)
                if not isinstance(down, nn.Identity):
                    h = down(h)
                    hs.append(h)
            h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
            for blocks, attns, up in zip(self.up_blocks, self.up_attn, self.upsamples, strict=True):
                for blk, att in zip(blocks, attns, strict=True):
                    h = att(blk(torch.cat([h, hs.pop()], dim=1), emb))
                h = up(h)
            return self.out_conv(F.silu(self.out_norm(h)))

    _CLASSES.update(UNet=TorchUNet, ResBlock=TorchResBlock, SelfAttention=TorchSelfAttention)
    return _CLASSES


_CLASSES: dict[str, type] = {}


def torch_unet(unet: UNet) -> Any:
    """A `torch.nn.Module` twin of `unet`, holding copies of all its weights, in eval mode.

    It works on batches: `twin(x, t)` with x `(n, channels, size, size)` and t `(n,)` equals
    `jax.vmap(unet)(x, t)` to float32 rounding (`cond`, `(n, embedding_dim)`, is the third
    argument). Dropout is a `torch.nn.Dropout`, off in eval mode as it is in `unet` without a key.
    """
    return _twin_classes()["UNet"](unet).eval()


def cpu_threads() -> int:
    """The CPU cores this process may run on: the size of XLA:CPU's thread pool."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def matmul_peak_gflops(n: int = 2048, *, repeat: int = 5) -> float:
    """The machine's practical float32 peak: the GFLOP/s of an `n x n` matmul (2 n^3 FLOPs),
    the better of JAX's and (when torch is installed) PyTorch's, each best of `repeat`."""
    a = jr.normal(jr.key(0), (n, n), jnp.float32)
    b = jr.normal(jr.key(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    contenders = {"jax": lambda: matmul(a, b)}
    try:
        torch = _torch()
    except ImportError:
        pass
    else:
        ta, tb = torch.tensor(np.asarray(a)), torch.tensor(np.asarray(b))
        contenders["torch"] = lambda: torch.matmul(ta, tb)
    seconds = min(best_times(contenders, repeat=repeat).values())
    return 2 * n**3 / seconds / 1e9


class TrainingStepTiming(NamedTuple):
    """Seconds per training step (forward, backward, Adam) in JAX and PyTorch, and its rates."""

    jax_s: float
    torch_s: float
    torch_over_jax: float  # above 1: JAX is faster
    flops: float  # of one step, as XLA counts them in the compiled JAX program
    jax_gflops: float
    torch_gflops: float  # the same FLOP count over torch's time
    peak_gflops: float  # the better float32 matmul rate of the two (`matmul_peak_gflops`)
    threads: int  # CPU threads of both sides
    batch_size: int
    jax_compile_s: float
    loss_diff: float  # |loss_jax - loss_torch| of the first step (same weights, same batch)
    jax_ops: dict[str, float] | None = None  # thread-seconds per step by XLA op kind (profile=True)
    torch_ops: dict[str, float] | None = (
        None  # self CPU seconds per step by torch op (profile=True)
    )


def _mse_of(static: eqx.Module):
    def loss(params, xt, t, target):
        net = eqx.combine(params, static)
        return jnp.mean((jax.vmap(net)(xt, t) - target) ** 2)

    return loss


def _flops(compiled: Any) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost["flops"])


def compare_training_step(
    config: dict[str, Any],
    *,
    batch_size: int | None = None,
    repeat: int = 3,
    learning_rate: float | None = None,
    matmul_size: int = 2048,
    net: UNet | None = None,
    key: PRNGKeyArray | None = None,
    profile: bool = False,
) -> TrainingStepTiming:
    """Best-of-`repeat` seconds of one training step of the galaxy U-Net of `config` in JAX
    and in PyTorch, alternated (`benchmark.best_times`), from the same weights on the same batch.

    Both sides minimise the same loss, the mean squared error between the network's output on
    given noised images x_t at times t and a given target (what `ddpm_loss` computes once it
    has drawn them; dropout is off on both sides), then take one Adam step (`optax.adam` and
    `torch.optim.Adam`, at the config's learning rate). The JAX step is one `jax.jit`-compiled
    function (compile time reported apart); torch runs eagerly with `cpu_threads()` threads.
    `net` (default: `build_unet(config)` from `key`) gives the weights, the same on both
    sides. `batch_size` defaults to the config's; the peak is that of a `matmul_size` square matmul
    (`matmul_peak_gflops`). The FLOP count is XLA's for the compiled JAX step,
    used for both sides' GFLOP/s. With `profile=True` both steps are also profiled, after the
    timing: `jax_ops` from `benchmark.xla_op_seconds`, `torch_ops` from `torch_op_seconds`.
    """
    from tutorial_lib.diffusion.galaxy import build_unet

    torch = _torch()
    key = jr.key(0) if key is None else key
    k_net, k_x, k_t, k_y = jr.split(key, 4)
    n = config["batch_size"] if batch_size is None else batch_size
    lr = config["learning_rate"] if learning_rate is None else learning_rate
    net = build_unet(config, key=k_net) if net is None else net
    shape = (n, net.channels, net.image_size, net.image_size)
    xt, target = jr.normal(k_x, shape), jr.normal(k_y, shape)
    t = jr.uniform(k_t, (n,), minval=1e-3, maxval=1.0)

    threads = cpu_threads()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # JAX: value_and_grad of the loss and an optax Adam update, compiled as one program.
        params, static = eqx.partition(net, eqx.is_inexact_array)
        optimiser = optax.adam(lr)
        loss_fn = _mse_of(static)

        def step(params, opt_state, xt, t, target):
            loss, grads = jax.value_and_grad(loss_fn)(params, xt, t, target)
            updates, opt_state = optimiser.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        state = [params, optimiser.init(params)]
        start = time.perf_counter()
        compiled = jax.jit(step).lower(*state, xt, t, target).compile()
        compile_s = time.perf_counter() - start
        flops = _flops(compiled)

        def jax_step():
            state[0], state[1], loss = compiled(*state, xt, t, target)
            return loss

        # PyTorch: the twin in train mode, the same loss, torch.optim.Adam.
        twin = torch_unet(net).train()
        adam = torch.optim.Adam(twin.parameters(), lr=lr)
        txt, tt, ttarget = (torch.tensor(np.asarray(a)) for a in (xt, t, target))

        def torch_step():
            adam.zero_grad(set_to_none=True)
            loss = torch.mean((twin(txt, tt) - ttarget) ** 2)
            loss.backward()
            adam.step()
            return loss.detach()

        # The first step of each, outside the timing: the losses of identical weights agree.
        loss_diff = abs(float(jax_step()) - float(torch_step()))
        times = best_times({"jax": jax_step, "torch": torch_step}, repeat=repeat, warmup=False)
        jax_ops = xla_op_seconds(jax_step, repeat=repeat) if profile else None
        torch_ops = torch_op_seconds(torch_step, repeat=repeat) if profile else None
    finally:
        torch.set_num_threads(old_threads)
    peak = matmul_peak_gflops(matmul_size)
    jax_s, torch_s = times["jax"], times["torch"]
    return TrainingStepTiming(
        jax_s=jax_s,
        torch_s=torch_s,
        torch_over_jax=torch_s / jax_s,
        flops=flops,
        jax_gflops=flops / jax_s / 1e9,
        torch_gflops=flops / torch_s / 1e9,
        peak_gflops=peak,
        threads=threads,
        batch_size=n,
        jax_compile_s=compile_s,
        loss_diff=loss_diff,
        jax_ops=jax_ops,
        torch_ops=torch_ops,
    )


def torch_op_seconds(fn: Any, *, repeat: int = 3) -> dict[str, float]:
    """Seconds per call of `fn()` that PyTorch spends in each operator, from `torch.profiler`.

    `fn` runs once first (warm-up), then `repeat` times under the profiler; each operator's *self*
    CPU time (its own, not its callees') is divided by `repeat`. Sorted, largest first.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}.")
    torch = _torch()
    fn()
    with (
        _quiet_stderr(),
        torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof,
    ):
        for _ in range(repeat):
            fn()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    return {e.key: e.self_cpu_time_total / 1e6 / repeat for e in events}


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the file descriptor 2 (the profiler's C++ start/stop log lines) in the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
