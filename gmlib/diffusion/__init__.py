"""Diffusion: noise schedules (buffers), the closed-form forward process, and the DDPM and DDIM samplers.

    schedule = NoiseSchedule.from_name("cosine", T=1000)
    x_t = q_sample(x0, t, eps, schedule.alpha_bar)
    scheduler = DDIMScheduler(schedule); scheduler.set_timesteps(50)
    for t in scheduler.timesteps:
        x, x0_pred = scheduler.step(model(x, t), t, x)
"""

from .ddim import DDIMScheduler, ddim_step
from .ddpm import DDPMScheduler, StepOutput, ddpm_step, spaced_timesteps
from .schedules import (
    NoiseSchedule,
    alpha_bar_from_betas,
    cosine_beta_schedule,
    epsilon_loss,
    extract,
    linear_beta_schedule,
    make_beta_schedule,
    posterior_mean_variance,
    predict_x0,
    q_sample,
)

__all__ = [
    "NoiseSchedule",
    "extract",
    "alpha_bar_from_betas",
    "linear_beta_schedule",
    "cosine_beta_schedule",
    "make_beta_schedule",
    "q_sample",
    "epsilon_loss",
    "predict_x0",
    "posterior_mean_variance",
    "DDPMScheduler",
    "DDIMScheduler",
    "ddpm_step",
    "ddim_step",
    "StepOutput",
    "spaced_timesteps",
]
