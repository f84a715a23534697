"""A diffusion model as the prior of an inverse problem: y = A(x) + noise.

- Measurements: `Inpainting` (a pixel mask) and `Blur` (convolution with a point-spread
  function, periodic, by FFT), both linear operators on one image `(C, H, W)`.
- `dps_sample`: diffusion posterior sampling (Chung et al. 2023). Each reverse step predicts
  the clean image x0_hat(x_t) (Tweedie's formula), and nudges x_t down the gradient of the
  data misfit ||y - A(x0_hat(x_t))||, differentiated through the network.
- Classical baselines: Wiener deconvolution and biharmonic inpainting (scikit-image).

Images are in model space, [-1, 1], channels first, like everything in `tutorial_lib.diffusion`.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from tutorial_lib.diffusion.ddpm import (
    EpsModel,
    SampleResult,
    ancestral_update,
    batched_eps,
    predict_x0,
    time_grid,
)
from tutorial_lib.diffusion.schedule import NoiseSchedule

__all__ = [
    "Blur",
    "Inpainting",
    "Measurement",
    "biharmonic_inpaint",
    "box_mask",
    "centred",
    "dps_sample",
    "gaussian_psf",
    "psnr",
    "random_mask",
    "wiener_deconvolve",
    "zeta_sweep",
]


class Measurement(eqx.Module):
    """A linear forward model A acting on one image `(C, H, W)`."""

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "c h w"]) -> Float[Array, "c h w"]:
        """A(x)."""

    def observe(
        self, key: PRNGKeyArray, x: Float[Array, "c h w"], noise_sd: float
    ) -> Float[Array, "c h w"]:
        """A simulated observation y = A(x) + noise_sd * z."""
        return self(x) + noise_sd * jr.normal(key, x.shape)


class Inpainting(Measurement):
    """Keep the pixels where `mask` is 1, lose the others (set to 0)."""

    mask: Float[Array, "h w"]

    def __call__(self, x):
        if x.shape[-2:] != self.mask.shape:
            raise ValueError(
                f"mask of shape {self.mask.shape} does not fit an image of shape {x.shape}"
            )
        return x * self.mask


class Blur(Measurement):
    """Convolution with a point-spread function (periodic boundaries, via the FFT).

    `psf` is `(H, W)`, sums to one and is centred at pixel (0, 0) — see `gaussian_psf`.
    """

    psf: Float[Array, "h w"]

    def __call__(self, x):
        if x.shape[-2:] != self.psf.shape:
            raise ValueError(
                f"PSF of shape {self.psf.shape} does not fit an image of shape {x.shape}"
            )
        return jnp.fft.irfft2(jnp.fft.rfft2(x) * jnp.fft.rfft2(self.psf), s=x.shape[-2:])


def gaussian_psf(size: int, fwhm: float) -> Float[Array, "size size"]:
    """A circular Gaussian seeing disc of full width at half maximum `fwhm` pixels, normalised,
    centred at pixel (0, 0) with periodic wrap-around (the layout the FFT expects)."""
    if fwhm <= 0:
        raise ValueError(f"fwhm must be positive (pixels), got {fwhm}")
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    d = np.minimum(np.arange(size), size - np.arange(size))
    r2 = d[:, None] ** 2 + d[None, :] ** 2
    psf = np.exp(-0.5 * r2 / sigma**2)
    return jnp.asarray(psf / psf.sum(), dtype=jnp.float32)


def centred(psf: Float[ArrayLike, "h w"]) -> Float[Array, "h w"]:
    """The PSF with its peak moved from pixel (0, 0) to the centre, for plotting and for
    libraries that expect it there."""
    return jnp.fft.fftshift(psf)


def random_mask(key: PRNGKeyArray, size: int, keep: float) -> Float[Array, "size size"]:
    """A mask keeping each pixel independently with probability `keep`."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    return jr.bernoulli(key, keep, (size, size)).astype(jnp.float32)


def box_mask(size: int, top: int, left: int, height: int, width: int) -> Float[Array, "size size"]:
    """A mask that hides one rectangle (a satellite trail, a bad CCD region...)."""
    mask = np.ones((size, size), np.float32)
    mask[top : top + height, left : left + width] = 0.0
    return jnp.asarray(mask)


# ----- posterior sampling ---------------------------------------------------------------------


def _dps_step(model, schedule, measurement, y, zeta, x, inputs):
    t, s, k = inputs
    eps_fn = batched_eps(model)

    def misfit(x):
        x0, eps = predict_x0(schedule, eps_fn, x, t, clip=False)
        residual = y - jax.vmap(measurement)(x0)
        # A sum of per-image norms: the gradient of each term touches only its own image.
        norms = jnp.sqrt(jnp.sum(residual**2, axis=(1, 2, 3)))
        return jnp.sum(norms), (x0, eps, norms)

    grad, (x0, _, norms) = jax.grad(misfit, has_aux=True)(x)
    # An ancestral (DDPM) step from the clipped x0 prediction...
    x0c = jnp.clip(x0, -1.0, 1.0)
    x_next = ancestral_update(schedule, x, x0c, t, s, k)
    # ...then a step down the data misfit, of a length set by `zeta` (Chung et al.'s step).
    return x_next - zeta * grad, (x0c, norms)


# Stepped from Python, not in a `fori_loop`: XLA:CPU runs the gradients of convolutions
# inside a loop more than ten times slower than outside one (see `make_train_step`).
_dps_step_jit = eqx.filter_jit(_dps_step)


def dps_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    measurement: Measurement,
    y: Float[Array, "..."],
    key: PRNGKeyArray,
    *,
    steps: int = 200,
    zeta: float = 1.0,
    keep: int = 0,
) -> SampleResult:
    """Diffusion posterior sampling: one draw of x | y per observation in `y`.

    Each of the `steps` reverse steps costs one network evaluation and its gradient (about
    three evaluations). `zeta` weighs the data against the prior: too small and the result
    ignores y, too large and it over-fits the noise. Returns the final images (model space)
    and, with `keep > 0`, that many x0 predictions along the way. `y` is a batch
    `(n, c, h, w)`; a single image raises a `ValueError`.
    """
    if y.ndim != 4:
        raise ValueError(f"y must be a batch of observations (n, c, h, w), got shape {y.shape}")
    if zeta < 0:
        raise ValueError(f"zeta must be non-negative, got {zeta}")
    k0, k_steps = jr.split(key)
    grid = time_grid(steps)
    x = jr.normal(k0, y.shape)
    x0s = []
    for t, s, k in zip(grid[:-1], grid[1:], jr.split(k_steps, steps), strict=True):
        x, (x0, _) = _dps_step_jit(model, schedule, measurement, y, zeta, x, (t, s, k))
        x0s.append(x0)
    trajectory = None
    if keep > 0:
        idx = np.linspace(0, steps - 1, keep).round().astype(int)
        trajectory = jnp.stack([x0s[i] for i in idx])
    return SampleResult(jnp.clip(x, -1.0, 1.0), 3 * steps, trajectory)


def zeta_sweep(
    model: EpsModel,
    schedule: NoiseSchedule,
    measurement: Measurement,
    truth: Float[Array, "n c h w"],
    key: PRNGKeyArray,
    *,
    zetas: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0),
    steps: int = 60,
    noise_sd: float = 0.05,
) -> dict[float, float]:
    """Mean PSNR in dB (one DPS sample per image) for each step size in `zetas`: how a step
    size is chosen. `truth` is a batch of images in model space that the evaluation will not
    use (training images); each is observed once through `measurement` with noise `noise_sd`,
    and each zeta costs one `dps_sample` of the batch with `steps` steps."""
    if truth.ndim != 4 or len(truth) == 0:
        raise ValueError(f"truth must be a non-empty batch (n, c, h, w), got shape {truth.shape}")
    k_observe, k_sample = jr.split(key)
    y = jax.vmap(lambda k, x: measurement.observe(k, x, noise_sd))(
        jr.split(k_observe, len(truth)), truth
    )
    unit = (np.asarray(truth) + 1) / 2
    scores = {}
    for zeta in zetas:
        images = dps_sample(model, schedule, measurement, y, k_sample, steps=steps, zeta=zeta)
        scores[float(zeta)] = float(np.mean(psnr((np.asarray(images.images) + 1) / 2, unit)))
    return scores


# ----- classical baselines --------------------------------------------------------------------


def wiener_deconvolve(
    y: Float[ArrayLike, "c h w"], psf: Float[ArrayLike, "h w"], balance: float
) -> Float[np.ndarray, "c h w"]:
    """Wiener(-Hunt) deconvolution of each channel (scikit-image), with a Laplacian
    regulariser of weight `balance` (larger = smoother)."""
    from skimage.restoration import wiener

    kernel = np.asarray(centred(psf))
    return np.stack([wiener(np.asarray(c), kernel, balance, clip=False) for c in np.asarray(y)])


def biharmonic_inpaint(
    y: Float[ArrayLike, "c h w"], mask: Float[ArrayLike, "h w"]
) -> Float[np.ndarray, "c h w"]:
    """Fill the lost pixels with the smoothest (biharmonic) surface through the kept ones."""
    from skimage.restoration import inpaint_biharmonic

    image = np.moveaxis(np.asarray(y), 0, -1)
    filled = inpaint_biharmonic(image, np.asarray(mask) == 0, channel_axis=-1)
    return np.moveaxis(filled, -1, 0)


def psnr(
    estimate: Float[ArrayLike, "*batch c h w"], truth: Float[ArrayLike, "*batch c h w"]
) -> Float[np.ndarray, "*batch"] | np.floating:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (per image, a NumPy scalar for
    one image; higher is better)."""
    estimate, truth = np.asarray(estimate), np.asarray(truth)
    mse = np.mean((np.clip(estimate, 0, 1) - truth) ** 2, axis=(-3, -2, -1))
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))
