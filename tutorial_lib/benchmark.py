"""Honest wall-clock timing for pages that claim a speed-up."""

import time
from collections.abc import Callable
from typing import Any

import jax

__all__ = [
    "best_time",
    "best_times",
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
