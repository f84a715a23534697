"""Honest wall-clock timing for pages that claim a speed-up."""

import time
from collections.abc import Callable
from typing import Any

import jax


def best_time(fn: Callable[[], Any], *, repeat: int = 3, warmup: bool = True) -> float:
    """Best-of-``repeat`` wall time in seconds of ``fn()``, waiting for JAX results.

    JAX dispatches work asynchronously, so the clock stops only after
    :func:`jax.block_until_ready` on the output. ``warmup`` runs ``fn`` once first so that
    compilation is not counted; time compilation separately when it matters.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}.")
    if warmup:
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)
