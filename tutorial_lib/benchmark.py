"""Honest wall-clock timing for pages that claim a speed-up."""

import collections
import glob
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax

__all__ = [
    "best_time",
    "best_times",
    "xla_op_seconds",
]


def best_time(fn: Callable[[], Any], *, repeat: int = 3, warmup: bool = True) -> float:
    """Best-of-`repeat` wall time in seconds of `fn()`, waiting for JAX results.

    JAX dispatches work asynchronously, so the clock stops only after
    `jax.block_until_ready` on the output. `warmup` runs `fn` once first so that
    compilation is not counted; time compilation separately when it matters.
    """
    return best_times({"fn": fn}, repeat=repeat, warmup=warmup)["fn"]


def best_times(
    fns: dict[str, Callable[[], Any]], *, repeat: int = 3, warmup: bool = True
) -> dict[str, float]:
    """Best-of-`repeat` wall times of several functions, run in turn within each round.

    Interleaving matters on a shared or throttling machine: a slow spell then hits every
    contender alike instead of whichever happened to be running, so their ratio is fairer
    than that of separate `best_time` calls.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}.")
    if not fns:
        raise ValueError("best_times needs at least one function to time.")
    if warmup:
        for fn in fns.values():
            jax.block_until_ready(fn())
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def xla_op_seconds(fn: Callable[[], Any], *, repeat: int = 3) -> dict[str, float]:
    """Seconds per call of `fn()` that XLA spends in each kind of operation, from a profile.

    `fn` is run once outside the profile (to compile), then `repeat` times under
    `jax.profiler.trace`; the trace's events on XLA's threads are summed by kind, the
    operation's name without its number (`ynn_fusion.12` and `ynn_fusion.31` are both
    `ynn_fusion`), and divided by `repeat`. Times are *thread* seconds: on several threads they
    add up to more than the wall time. Sorted, largest first. The names are XLA's and change
    between versions: `ynn_fusion` (XNNPACK/YNNPACK kernels: convolutions, matrix products),
    `transpose...` (layout changes), other `..._fusion` (element-wise work and reductions).
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}.")
    jax.block_until_ready(fn())
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder):
            for _ in range(repeat):
                jax.block_until_ready(fn())
        files = glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)
        if not files:
            raise RuntimeError(f"jax.profiler.trace wrote no profile into {folder}.")
        profile = jax.profiler.ProfileData.from_file(files[0])
        totals: collections.Counter[str] = collections.Counter()
        for plane in profile.planes:
            for line in plane.lines:
                if not line.name.startswith("tf_XLA"):  # XLA's own threads, not Python's
                    continue
                for event in line.events:
                    # HLO operations only: runtime bookkeeping has "::" in its name
                    if "::" in event.name or event.name.startswith("end: "):
                        continue
                    totals[re.sub(r"\.\d+$", "", event.name)] += event.duration_ns
    return {kind: ns / 1e9 / repeat for kind, ns in totals.most_common()}
