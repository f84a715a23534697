"""Part IV of the book, *A zoo of generative models for galaxies*: the library behind its pages
(`docs/generative/`).

Every model is trained on the galaxy DDPM's split of the same 32x32 SDSS galaxies
(`galaxies`) and judged on the same held-out ones. One module per idea: `vae` (variational
autoencoders, the ELBO, the discretised logistic likelihood), `flow` (multi-scale affine
coupling flows), `autoregressive` (MAF and IAF), `bits` (bits per dimension, dequantisation and
the Gaussian and PPCA baselines), `classify` (PCA, logistic and ridge regression, intervals) and
`models` (the shipped models behind `pretrained(name)`).
"""

from tutorial_lib.generative import autoregressive as autoregressive
from tutorial_lib.generative import bits as bits
from tutorial_lib.generative import classify as classify
from tutorial_lib.generative import flow as flow
from tutorial_lib.generative import galaxies as galaxies
from tutorial_lib.generative import models as models
from tutorial_lib.generative import vae as vae
from tutorial_lib.generative.autoregressive import MADE, AutoregressiveFlow
from tutorial_lib.generative.bits import (
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
from tutorial_lib.generative.models import GalaxyFlow, GalaxyVAE, pretrained
from tutorial_lib.generative.vae import (
    VAE,
    discretised_logistic_log_prob,
    elbo,
    gaussian_kl,
    reparameterise,
)

__all__ = [
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
    "dequantise",
    "discretised_logistic_log_prob",
    "elbo",
    "fit_logistic",
    "fit_ridge",
    "gaussian_kl",
    "initialise_actnorm",
    "labelled_split",
    "paired_bootstrap",
    "pretrained",
    "r_squared",
    "reparameterise",
    "wilson_interval",
]
