"""DDPM on the 8x8 digits: a small UNet (two resolutions, 8x8 and 4x4) predicting eps, cosine schedule, T = 1000.

Training: Adam with L_simple for the time budget, keeping an exponential moving average of the weights (what
DDPM samples from: Ho et al., 2020, use EMA too); the EMA weights are copied into the model at the end.
Sampling: DDPM ancestral steps on 100 of the 1000 timesteps (evenly spaced from t = 999 to 0, betas recomputed
for the subset; the same as DDIM with eta = 1), x0 clipped to [-1, 1]; samples (x + 1) / 2 clipped to [0, 1].
Measured (2 threads, idle 2-core CPU): 3636 steps in 120 s, held-out L_simple 0.138 (EMA weights); FID on 1000
samples against the 359 test images, sample seeds 0 / 1 / 2: DDPM-100 0.73 / 0.91 / 0.68, deterministic DDIM-50
(eta = 0) 0.91 / 0.63 / 1.19, data floor 0.22. The stochastic sampler forgives the short-trained network's errors
better; it takes about 11 s per 1000 samples on 2 cores, twice the DDIM-50 time.
No exact likelihood (the ELBO only bounds it): bits/dim is None.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.families import CPU_CLOCK, EMA
from gmlib.data import digits_loader
from gmlib.models.ddpm import DDPM, DDPMConfig
from gmlib.train import History, fit

NAME = "ddpm"

CONFIG = DDPMConfig(kind="image", image_shape=(1, 8, 8), T=1000, schedule="cosine", widths=(32, 64))
BATCH_SIZE = 64
LR = 2e-3
EMA_DECAY = 0.999  # per step (warmed up): ~1000 steps of memory; 120 s is ~3600 steps on 2 idle cores
SAMPLER = "ddpm"  # or "ddim" (deterministic, eta = 0) with NUM_STEPS = 50: twice as fast, worse FID here
NUM_STEPS = 250
EPOCHS = 10_000  # the time budget stops training


DENOISER = "unet"  # or "mlp": an MLP eps-network on the flattened 64 pixels (FlatDDPM below)
MLP_WIDTHS = (512, 512, 512)


class FlatDDPM(nn.Module):
    """The 2D-data DDPM (an MLP denoiser) applied to flattened 8x8 images scaled to [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.inner = DDPM(DDPMConfig(kind="2d", data_dim=64, T=CONFIG.T, schedule=CONFIG.schedule, widths=MLP_WIDTHS))

    def loss(self, batch):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch  # (B, 1, 8, 8) in [0, 1]
        return self.inner.loss(2.0 * x.flatten(1) - 1.0)

    @torch.no_grad()
    def sample(self, n: int, **kwargs) -> torch.Tensor:
        flat = self.inner.sample(n, **kwargs)  # (n, 64) in model units
        return ((flat.clamp(-1.0, 1.0) + 1.0) / 2.0).view(n, *CONFIG.image_shape)


def build() -> nn.Module:
    return FlatDDPM() if DENOISER == "mlp" else DDPM(CONFIG)


def train(model: nn.Module, budget_s: float, device) -> History:
    loader = digits_loader("train", "continuous", batch_size=BATCH_SIZE, shuffle=True, seed=0)
    ema = EMA(model, EMA_DECAY)
    history = fit(model, loader, epochs=EPOCHS, lr=LR, max_seconds=budget_s, clock=CPU_CLOCK, callbacks=[ema], device=device,
                  progress=False)
    ema.copy_to_model()
    return history


@torch.no_grad()
def sample(model: nn.Module, n: int, generator: torch.Generator | None) -> torch.Tensor:
    return model.sample(n, sampler=SAMPLER, num_steps=NUM_STEPS, generator=generator).cpu()  # (n, 1, 8, 8) in [0, 1]


def bits_per_dim(model: nn.Module, x_test: torch.Tensor) -> float | None:
    return None  # the variational bound is not an exact likelihood; the table reports exact values only
