"""Part IV of the book, *A zoo of generative models for galaxies*: the library behind its pages
(`docs/generative/`).

Every model is trained on the galaxy DDPM's split of the same 32x32 SDSS galaxies
(`galaxies`) and judged on the same held-out ones. One module per idea: `vae` (variational
autoencoders, the ELBO, the discretised logistic likelihood), `flow` (multi-scale affine
coupling flows), `autoregressive` (MAF and IAF), `bits` (bits per dimension, dequantisation and
the Gaussian and PPCA baselines), `classify` (PCA, logistic and ridge regression, intervals) and
`models` (the shipped models behind `pretrained(name)`) and `likelihood` (the galaxy DDPM's
bits/dim through its probability flow).

`morphology` is Part II's galaxy summaries (`tutorial_lib.diffusion.morphology`), re-exported
because every chapter of Part IV judges its galaxies with them.
"""

from tutorial_lib.diffusion import morphology as morphology
from tutorial_lib.generative import autoregressive as autoregressive
from tutorial_lib.generative import bits as bits
from tutorial_lib.generative import classify as classify
from tutorial_lib.generative import flow as flow
from tutorial_lib.generative import galaxies as galaxies
from tutorial_lib.generative import likelihood as likelihood
from tutorial_lib.generative import models as models
from tutorial_lib.generative import vae as vae
from tutorial_lib.generative.autoregressive import MADE, AutoregressiveFlow, fit_autoregressive_flow
from tutorial_lib.generative.bits import (
    DEQUANTISATION_SEED,
    PPCA,
    IndependentGaussian,
    bits_per_dim,
    check_images,
    dequantise,
)
from tutorial_lib.generative.classify import (
    PCA,
    cross_validate_l2,
    fit_logistic,
    fit_ridge,
    paired_bootstrap,
    r_squared,
    wilson_interval,
)
from tutorial_lib.generative.flow import (
    ActNorm,
    AffineCoupling,
    ImageFlow,
    Squeeze,
    build_image_flow,
    initialise_actnorm,
)
from tutorial_lib.generative.galaxies import IMAGE_SIZE, LabelledSplit, labelled_split
from tutorial_lib.generative.likelihood import ddpm_bits_per_dim, load_ddpm_bits
from tutorial_lib.generative.models import GalaxyFlow, GalaxyVAE, pretrained
from tutorial_lib.generative.vae import (
    VAE,
    discretised_logistic_log_prob,
    elbo,
    gaussian_kl,
    reparameterise,
)

__all__ = [
    "DEQUANTISATION_SEED",
    "IMAGE_SIZE",
    "MADE",
    "PCA",
    "PPCA",
    "VAE",
    "ActNorm",
    "AffineCoupling",
    "AutoregressiveFlow",
    "GalaxyFlow",
    "GalaxyVAE",
    "ImageFlow",
    "IndependentGaussian",
    "LabelledSplit",
    "Squeeze",
    "bits_per_dim",
    "build_image_flow",
    "check_images",
    "cross_validate_l2",
    "ddpm_bits_per_dim",
    "dequantise",
    "discretised_logistic_log_prob",
    "elbo",
    "fit_autoregressive_flow",
    "fit_logistic",
    "fit_ridge",
    "gaussian_kl",
    "initialise_actnorm",
    "labelled_split",
    "load_ddpm_bits",
    "paired_bootstrap",
    "pretrained",
    "r_squared",
    "reparameterise",
    "wilson_interval",
]
