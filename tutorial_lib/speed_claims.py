"""The book's speed claims, each measured again side by side for the Benchmarks page.

Every chapter that says "JAX is N times faster than X" measures it on its own page. This module
repeats each of those measurements with the same workload and the same code, in one process,
with the two sides alternated (`benchmark.best_times`), so that one table can put them side
by side on the reader's machine:

* `wave_claim`: the acoustic wave simulation, NumPy loop against `jit` + `lax.scan`
  (Part I, accelerated NumPy);
* `langevin_claim`: annealed Langevin dynamics, NumPy loop against JAX (Part I, Langevin);
* `ode_claim`: a thousand Lotka–Volterra solves, SciPy's `solve_ivp` loop against a
  `vmap`-ed Diffrax solve (Part I, ecosystem);
* `esm2_claim`: one ESM2-8M forward pass, PyTorch against JAX (Part III, ESM2);
* `unet_claim`: one training step of the galaxy U-Net, PyTorch against JAX (new here);
* `sampler_seconds`: the Part IV models' cost of drawing 64 galaxies.

Each claim is a `SpeedClaim`: `ratio` is the baseline's time over the contender's, so above 1
the contender (JAX) is faster.
"""

import os
import platform
from typing import NamedTuple

import jax
import jax.random as jr
import numpy as np

from tutorial_lib import config
from tutorial_lib.benchmark import best_times

__all__ = [
    "SpeedClaim",
    "UNetClaim",
    "esm2_claim",
    "langevin_claim",
    "machine_description",
    "ode_claim",
    "sampler_seconds",
    "unet_claim",
    "wave_claim",
]


class SpeedClaim(NamedTuple):
    """One speed claim measured: best seconds of each side on the same `workload`."""

    claim: str
    page: str  # the chapter that makes the claim, as a docs path
    workload: str
    baseline: str
    contender: str
    baseline_s: float
    contender_s: float

    @property
    def ratio(self) -> float:
        """Baseline time over contender time: above 1, the contender is faster."""
        return self.baseline_s / self.contender_s


def machine_description() -> str:
    """The processor, its cores, the JAX backend and versions, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device = jax.devices()[0]
    return (
        f"{cpu}, {cores} cores available; JAX {jax.__version__} on {device.platform} "
        f"({device.device_kind}), NumPy {np.__version__}, Python {platform.python_version()}"
    )


def _check_repeat(repeat) -> None:
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be a positive int, got {repeat!r}.")


def wave_claim(*, n: int | None = None, repeat: int = 3) -> SpeedClaim:
    """The wave simulation of the accelerated-NumPy chapter: an `n` x `n` layered section
    (default: the profile's, 400 on a CPU), 2 s of recording at Courant number 0.5."""
    from tutorial_lib.jax_science import wave

    _check_repeat(repeat)
    n = config.pick(cpu=400, gpu=1000) if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < 32:
        raise ValueError(f"n must be an int >= 32 (grid points per side), got {n!r}.")
    dx = 2000.0 / n
    velocity = wave.layered_velocity(n, n)
    dt = 0.5 * dx / velocity.max()
    t = np.arange(0.0, 2.0, dt)
    setup = dict(
        dx=dx,
        dt=dt,
        wavelet=wave.ricker(t, f0=15.0, t0=0.08),
        source=(4, n // 2),
        receivers=np.stack([np.full(n - 20, 4), np.arange(10, n - 10)], axis=1),
        damping=wave.sponge(n, n),
    )
    jax.block_until_ready(wave.simulate_jax(velocity, **setup))  # compile outside the timing
    times = best_times(
        {
            "numpy": lambda: wave.simulate_numpy(velocity, **setup),
            "jax": lambda: wave.simulate_jax(velocity, **setup),
        },
        repeat=repeat,
        warmup=False,
    )
    return SpeedClaim(
        "wave simulation",
        "jax/accelerated-numpy",
        f"{n}×{n} grid, {len(t)} time steps",
        "NumPy loop",
        "JAX jit + scan",
        times["numpy"],
        times["jax"],
    )


def langevin_claim(*, n_chains: int | None = None, repeat: int = 2) -> SpeedClaim:
    """Annealed Langevin dynamics on the Langevin chapter's two-mode mixture: 10 noise levels
    from 20 to 0.5, 100 steps each, `n_chains` chains (default: the profile's, 2,000 on a CPU)."""
    from tutorial_lib.data.toy import GaussianMixture
    from tutorial_lib.jax_science import sampling

    _check_repeat(repeat)
    n = config.pick(cpu=2_000, gpu=10_000) if n_chains is None else n_chains
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n_chains must be a positive int, got {n!r}.")
    target = GaussianMixture.isotropic(
        weights=[0.2, 0.8], means=[[-5.0, -5.0], [5.0, 5.0]], stds=1.0
    )

    def noisy_score(x, sigma):
        return target.noised(sigma).score(x)

    sigmas = sampling.geometric_sigmas(20.0, 0.5, 10)
    eps, n_steps_each = 0.05, 100
    x0 = jr.uniform(jr.key(0), (n, 2), minval=-8.0, maxval=8.0)
    np_score, x0_np = sampling.mixture_score_numpy(target), np.asarray(x0)

    def run_jax():
        return sampling.annealed_langevin(noisy_score, x0, jr.key(2), sigmas, eps, n_steps_each)

    jax.block_until_ready(run_jax())
    times = best_times(
        {
            "numpy": lambda: sampling.annealed_langevin_numpy(
                np_score, x0_np, 0, np.asarray(sigmas), eps, n_steps_each
            ),
            "jax": run_jax,
        },
        repeat=repeat,
        warmup=False,
    )
    return SpeedClaim(
        "annealed Langevin",
        "jax/langevin",
        f"{n:,} chains, 10 levels × {n_steps_each} steps",
        "NumPy loop",
        "JAX jit + scan",
        times["numpy"],
        times["jax"],
    )


def ode_claim(*, n_problems: int = 1000, repeat: int = 2) -> SpeedClaim:
    """The ecosystem chapter's `n_problems` Lotka–Volterra solves in float64 (rtol 1e-6, atol
    1e-8, 31 save times over 15 time units): SciPy's RK45 one at a time against Diffrax's
    Tsit5 under `vmap` + `jit`."""
    from tutorial_lib.jax_science import ode_benchmark as ob

    _check_repeat(repeat)
    if isinstance(n_problems, bool) or not isinstance(n_problems, int) or n_problems < 1:
        raise ValueError(f"n_problems must be a positive int, got {n_problems!r}.")
    y0s, params = ob.sample_problems(n_problems, seed=0)
    ts = np.linspace(0.0, 15.0, 31)
    tolerances = dict(rtol=1e-6, atol=1e-8)
    with jax.enable_x64(True):
        jax.block_until_ready(ob.solve_diffrax_batch(y0s, params, ts, **tolerances))
        times = best_times(
            {
                "scipy": lambda: ob.solve_scipy_batch(y0s, params, ts, **tolerances),
                "diffrax": lambda: ob.solve_diffrax_batch(y0s, params, ts, **tolerances),
            },
            repeat=repeat,
            warmup=False,
        )
    return SpeedClaim(
        "many small ODE solves",
        "jax/ecosystem",
        f"{n_problems:,} Lotka–Volterra solves, float64",
        "SciPy solve_ivp loop",
        "Diffrax vmap + jit",
        times["scipy"],
        times["diffrax"],
    )


def esm2_claim(*, batch_size: int = 8, length: int = 256, repeat: int = 3) -> SpeedClaim:
    """One forward pass of ESM2 at the 8M model's size (random weights, the same in both),
    `batch_size` sequences of `length` tokens: PyTorch (transformers) against JAX. Needs torch
    and transformers."""
    from tutorial_lib.protein.timing import compare_forward_speed

    _check_repeat(repeat)
    result = compare_forward_speed(batch_size=batch_size, length=length, repeat=repeat)
    return SpeedClaim(
        "ESM2 forward pass",
        "protein/esm2",
        f"8M-parameter shape, {batch_size} × {length} tokens",
        "PyTorch (transformers)",
        "JAX jit",
        result["torch_s"],
        result["jax_s"],
    )


class UNetClaim(NamedTuple):
    """`unet_claim`'s result: the claim and the training step's full measurement."""

    claim: SpeedClaim
    timing: object  # diffusion.torch_twin.TrainingStepTiming


def unet_claim(*, repeat: int = 3, profile: bool = False) -> UNetClaim:
    """One training step (forward, backward, Adam) of the book's galaxy U-Net with its shipped
    weights, at its training batch size: PyTorch twin against JAX. Needs torch. With `profile`,
    the timing also holds both sides' profiles (`torch_twin.compare_training_step`)."""
    from tutorial_lib.diffusion.galaxy import CONFIGS, pretrained_galaxy_ddpm
    from tutorial_lib.diffusion.torch_twin import compare_training_step

    _check_repeat(repeat)
    model = pretrained_galaxy_ddpm()
    size = model.metadata["config"]["image_size"]
    galaxy_config = next(c for c in CONFIGS.values() if c["image_size"] == size)
    net = getattr(model.model, "net", model.model)
    timing = compare_training_step(galaxy_config, net=net, repeat=repeat, profile=profile)
    claim = SpeedClaim(
        "U-Net DDPM training step",
        "diffusion/astro-ddpm",
        f"{size}×{size} galaxies, batch {timing.batch_size}, forward + backward + Adam",
        "PyTorch (eager)",
        "JAX jit",
        timing.torch_s,
        timing.jax_s,
    )
    return UNetClaim(claim, timing)


def sampler_seconds(n: int = 64, *, repeat: int = 2, diffusion_steps: int = 50) -> dict[str, float]:
    """Best seconds to draw `n` galaxies from each shipped Part IV model: VAE, flow and GAN
    directly; the DDPM and conditional DDPM with DDIM, `diffusion_steps` steps, timed on 8
    galaxies and 10 steps and scaled linearly (the cost is one network call per image per
    step on a CPU)."""
    from tutorial_lib.generative.models import pretrained

    _check_repeat(repeat)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}.")
    models = {name: pretrained(f"galaxy-{name}") for name in ["vae", "flow", "gan", "ddpm"]}
    direct = {
        name: (lambda m=models[key]: m.sample(jr.key(1), n))
        for name, key in [("VAE", "vae"), ("flow", "flow"), ("GAN", "gan")]
    }
    seconds = best_times(direct, repeat=repeat)
    probe = best_times({"DDPM": lambda: models["ddpm"].sample(jr.key(1), 8, steps=10)}, repeat=1)[
        "DDPM"
    ]
    seconds["DDPM"] = probe * (n / 8) * (diffusion_steps / 10)
    return {name: float(s) for name, s in seconds.items()}
