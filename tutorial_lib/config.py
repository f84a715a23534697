"""One knob for problem sizes: a small CPU profile and a larger GPU profile.

Pages never hard-code sizes. They ask `pick` for a value, which returns the CPU
value on a laptop or CI machine and the GPU value on an accelerator (for example a Colab
GPU runtime). Override the automatic choice with the environment variable
`JAXGENAI_PROFILE=cpu` or `JAXGENAI_PROFILE=gpu` (`auto` is the default).
"""

import os
from typing import Literal, TypeVar

import jax

__all__ = [
    "PROFILES",
    "PROFILE_ENV",
    "Profile",
    "pick",
    "profile",
]

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
