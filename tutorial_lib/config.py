"""One knob for problem sizes: a small CPU profile and a larger GPU profile.

Pages never hard-code sizes. They ask `pick` for a value, which returns the CPU
value on a laptop or CI machine and the GPU value on an accelerator (for example a Colab
GPU runtime). Override the automatic choice with the environment variable
`JAXGENAI_PROFILE=cpu` or `JAXGENAI_PROFILE=gpu` (`auto` is the default).

The book's build (`nox -s docs`) also adds `BUILD_XLA_FLAGS` to `XLA_FLAGS`: XLA then asks LLVM
for less optimisation and generates fused loops with its older, simpler emitters, which
compiles small programs (random-number generators and eager operations above all) several times
faster at some cost in run time. Pages that time JAX against another tool call `xla_defaults()`
first, so that they measure JAX as it runs by default.
"""

import os
from typing import Literal, TypeVar

import jax

__all__ = [
    "BUILD_XLA_FLAGS",
    "PROFILES",
    "PROFILE_ENV",
    "Profile",
    "pick",
    "profile",
    "xla_defaults",
]

BUILD_XLA_FLAGS = "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"

PROFILE_ENV = "JAXGENAI_PROFILE"
PROFILES = ("cpu", "gpu")
_ACCELERATORS = ("gpu", "cuda", "rocm", "tpu", "METAL")

Profile = Literal["cpu", "gpu"]
Value = TypeVar("Value")


def profile() -> Profile:
    """The size profile in force: `"gpu"` on an accelerator backend, else `"cpu"`."""
    value = os.environ.get(PROFILE_ENV, "auto").strip().lower()
    if value == "auto":
        return "gpu" if jax.default_backend() in _ACCELERATORS else "cpu"
    if value in PROFILES:
        return value  # type: ignore[return-value]
    raise ValueError(
        f"{PROFILE_ENV}={value!r} is not a size profile: use 'cpu', 'gpu' or 'auto' "
        f"(or unset it to choose from the JAX backend)."
    )


def pick(*, cpu: Value, gpu: Value, profile: Profile | None = None) -> Value:
    """Return `cpu` or `gpu` according to the profile in force (or the one given).

    >>> n_steps = pick(cpu=500, gpu=5_000)  # doctest: +SKIP
    """
    chosen = _current() if profile is None else profile
    if chosen not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {chosen!r}")
    return gpu if chosen == "gpu" else cpu


_current = profile  # `pick`'s argument of the same name shadows the function


def xla_defaults() -> None:
    """Remove the build's `BUILD_XLA_FLAGS` from `XLA_FLAGS` (other flags stay), so that JAX
    compiles with XLA's default settings. XLA reads its flags once, when JAX starts its
    backend: call this before the first computation, or a `RuntimeError` says it is too late."""
    from jax._src import xla_bridge

    flags = os.environ.get("XLA_FLAGS", "").split()
    build = set(BUILD_XLA_FLAGS.split())
    if not build & set(flags):
        return
    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            f"XLA_FLAGS holds the build's {BUILD_XLA_FLAGS} and JAX has already started its "
            "backend, which read them: call config.xla_defaults() before the first JAX "
            "computation (restart the kernel and run it first)."
        )
    os.environ["XLA_FLAGS"] = " ".join(f for f in flags if f not in build)
