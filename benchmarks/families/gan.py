"""GAN family for the benchmarks: a DCGAN (non-saturating loss) on the 8x8 digits.

No likelihood: bits_per_dim is None; compare GANs by FID/KID on digit-classifier features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from benchmarks.families import CPU_CLOCK, EMA
from gmlib.data import load_digits
from gmlib.models.gan import GAN, GANConfig, gan_step
from gmlib.train import History, fit

NAME = "gan"
BATCH_SIZE = 64
EMA_DECAY = 0.999  # exponential moving average of the generator's weights; 0 turns it off

CONFIG = GANConfig(
    data="image",
    image_shape=(1, 8, 8),
    latent_dim=32,
    channels=64,
    loss="nonsaturating",
    lr_g=2e-4,
    lr_d=2e-4,
    betas=(0.5, 0.999),
)


def build() -> nn.Module:
    return GAN(CONFIG)


def train(model: nn.Module, budget_s: float, device) -> History:
    data = load_digits("train")
    loader = DataLoader(
        data, batch_size=BATCH_SIZE, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0)
    )
    model.to(device)
    ema = EMA(model.G, EMA_DECAY) if EMA_DECAY else None
    history = fit(
        model,
        loader,
        epochs=1_000_000,
        optimizers=model.optimizers(),
        step_fn=gan_step,
        max_seconds=budget_s, clock=CPU_CLOCK,
        device=device,
        progress=False,
        callbacks=[ema] if ema else [],
    )
    if ema:
        ema.copy_to_model()  # samples come from the averaged generator (Yazici et al., 2019)
    return history


def sample(model: nn.Module, n: int, generator: torch.Generator | None = None) -> Tensor:
    model.eval()
    return model.sample(n, generator=generator).cpu()  # (n, 1, 8, 8) in [0, 1]


def bits_per_dim(model: nn.Module, x_test: Tensor) -> float | None:
    return None  # a GAN has no likelihood
