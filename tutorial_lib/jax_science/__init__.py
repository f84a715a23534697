"""Part I of the book, *JAX*: the library behind its pages (`docs/jax/`).

One module per idea: `wave` (the 2-D acoustic wave equation, NumPy vs JAX), `fwi` (full-waveform
inversion through `wave`), `least_squares` (the ringdown fit with Optimistix), `integrators`
(hand-written ODE steppers vs Diffrax), `ode_benchmark` (Diffrax vs SciPy), `neural_ode`,
`pytrees` (a damped oscillator as a pytree), `parallel` (devices and sharding) and `sampling`
(Langevin dynamics). The package is not called `jax` so that it can never shadow JAX itself.
"""

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
