"""Denoising diffusion models: noise schedules, a U-Net, DDPM training and samplers, and the
book's pretrained galaxy model."""

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
from tutorial_lib.diffusion.unet import UNet, count_parameters, sinusoidal_embedding

__all__ = [
    "GALAXY_DDPM_CONFIGS",
    "SAMPLERS",
    "CosineSchedule",
    "GalaxyDDPM",
    "LinearSchedule",
    "NoiseSchedule",
    "SampleResult",
    "TrainState",
    "UNet",
    "VPrediction",
    "ancestral_sample",
    "as_noise_predictor",
    "augmented_batch",
    "build_unet",
    "count_parameters",
    "ddim_sample",
    "ddpm_loss",
    "ema_update",
    "galaxy_split",
    "init_train_state",
    "make_schedule",
    "make_train_step",
    "ode_sample",
    "pretrained_galaxy_ddpm",
    "sinusoidal_embedding",
    "time_grid",
    "to_image_space",
    "to_model_space",
]
