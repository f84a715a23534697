"""Part II of the book, *Diffusion models*: the library behind its pages (`docs/diffusion/`).

One module per idea: `score_matching` (denoising score matching with a noise-conditional
network on 2-D data), `sde` (forward and reverse SDEs, the probability-flow ODE and exact
likelihoods), `schedule` (DDPM's noise schedules; the linear one is `sde.VPSDE`), `unet` (the
noise-prediction U-Net), `ddpm` (DDPM training and the ancestral, DDIM and ODE samplers),
`galaxy` (the book's galaxy model and its data), `torch_twin` (a PyTorch twin of the
U-Net, for timing one against the other), `morphology` (galaxy shape statistics) and
`inverse` (diffusion posterior sampling and classical baselines).

The Langevin samplers `annealed_langevin`, `geometric_sigmas` and `nearest_mode_fractions`
belong to Part I (`tutorial_lib.jax_science.sampling`); they are re-exported here because
Part II samples with them.
"""

# The submodules, as attributes of the package (`tutorial_lib.diffusion.sde`). They stay out of
# `__all__`, which lists the names the library reference documents on the package's page.
from tutorial_lib.diffusion import ddpm as ddpm
from tutorial_lib.diffusion import galaxy as galaxy
from tutorial_lib.diffusion import inverse as inverse
from tutorial_lib.diffusion import morphology as morphology
from tutorial_lib.diffusion import schedule as schedule
from tutorial_lib.diffusion import score_matching as score_matching
from tutorial_lib.diffusion import sde as sde
from tutorial_lib.diffusion import torch_twin as torch_twin
from tutorial_lib.diffusion import unet as unet
from tutorial_lib.diffusion.ddpm import (
    SAMPLERS,
    SampleResult,
    TrainState,
    VPrediction,
    ancestral_sample,
    ddim_sample,
    ddpm_loss,
    ema_update,
    init_train_state,
    make_train_step,
    ode_sample,
    time_grid,
)
from tutorial_lib.diffusion.galaxy import (
    CONFIGS as GALAXY_DDPM_CONFIGS,
)
from tutorial_lib.diffusion.galaxy import (
    GalaxyDDPM,
    as_noise_predictor,
    augmented_batch,
    build_unet,
    galaxy_split,
    pretrained_galaxy_ddpm,
    to_image_space,
    to_model_space,
)
from tutorial_lib.diffusion.schedule import (
    CosineSchedule,
    LinearSchedule,
    NoiseSchedule,
    make_schedule,
)
from tutorial_lib.diffusion.torch_twin import (
    TrainingStepTiming,
    compare_training_step,
    torch_unet,
)
from tutorial_lib.diffusion.unet import UNet, count_parameters, sinusoidal_embedding
from tutorial_lib.jax_science.sampling import (
    annealed_langevin,
    geometric_sigmas,
    nearest_mode_fractions,
)

__all__ = [
    "GALAXY_DDPM_CONFIGS",
    "SAMPLERS",
    "CosineSchedule",
    "GalaxyDDPM",
    "LinearSchedule",
    "NoiseSchedule",
    "SampleResult",
    "TrainState",
    "TrainingStepTiming",
    "UNet",
    "VPrediction",
    "ancestral_sample",
    "annealed_langevin",
    "as_noise_predictor",
    "augmented_batch",
    "build_unet",
    "compare_training_step",
    "count_parameters",
    "ddim_sample",
    "ddpm_loss",
    "ema_update",
    "galaxy_split",
    "geometric_sigmas",
    "init_train_state",
    "make_schedule",
    "make_train_step",
    "nearest_mode_fractions",
    "ode_sample",
    "pretrained_galaxy_ddpm",
    "sinusoidal_embedding",
    "time_grid",
    "to_image_space",
    "to_model_space",
    "torch_unet",
]
