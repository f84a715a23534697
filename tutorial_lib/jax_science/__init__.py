"""Part I of the book, *JAX*: the library behind its pages (`docs/jax/`).

One module per idea: `wave` (the 2-D acoustic wave equation, NumPy vs JAX), `fwi` (full-waveform
inversion through `wave`), `least_squares` (the ringdown fit with Optimistix), `integrators`
(hand-written ODE steppers vs Diffrax), `ode_benchmark` (Diffrax vs SciPy), `neural_ode`,
`pytrees` (a damped oscillator as a pytree), `parallel` (devices and sharding), `sampling`
(Langevin dynamics) and `bayes` (the ringdown's posterior with NumPyro and BlackJAX). The package
is not called `jax` so that it can never shadow JAX itself.

`bayes` needs NumPyro and BlackJAX (the `docs` and `test` extras), so it is imported on first use
of `tutorial_lib.jax_science.bayes`: the rest of the package works without them.
"""

import importlib

from tutorial_lib.jax_science import (
    fwi,
    integrators,
    least_squares,
    neural_ode,
    ode_benchmark,
    parallel,
    pytrees,
    sampling,
    wave,
)
from tutorial_lib.jax_science.sampling import (
    annealed_langevin,
    geometric_sigmas,
    langevin,
    nearest_mode_fractions,
)

__all__ = [
    "annealed_langevin",
    "bayes",
    "fwi",
    "geometric_sigmas",
    "integrators",
    "langevin",
    "least_squares",
    "nearest_mode_fractions",
    "neural_ode",
    "ode_benchmark",
    "parallel",
    "pytrees",
    "sampling",
    "wave",
]


def __getattr__(name: str):
    if name == "bayes":  # lazily: NumPyro and BlackJAX are optional dependencies
        return importlib.import_module("tutorial_lib.jax_science.bayes")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
