"""Energy-based model on 8x8 digits: a small conv energy, CD with short-run Langevin chains and a replay
buffer (Du and Mordatch, 2019); samples by Langevin dynamics from uniform noise. No likelihood (Z unknown).

Tuning notes (digits FID on the course's feature network, data floor about 1; 120 s on a shared 2-core CPU):
each update costs num_steps forward/backward passes, so short chains win on a budget: 20 steps per update
(about 530 updates) gave FID about 9 from noise with 60 sampling steps, 30 steps per update (about 370 updates)
about 32; the replay buffer's own samples reach about 6. A reinit probability of 0.2 (rather than 0.05) keeps
the model good at turning noise into digits, which is what `sample` does. Chains much longer than 3x the
training length drift (FID rises), and noiseless final steps did not help.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchmarks.families import CPU_CLOCK
from gmlib.data import load_digits
from gmlib.models.ebm import EBM, EBMConfig
from gmlib.train import History, fit

NAME = "ebm"

CONFIG = EBMConfig(
    kind="image",
    image_shape=(1, 8, 8),
    channels=(32, 64),
    step_size=0.25,
    noise_scale=0.005,
    num_steps=20,
    buffer_size=10_000,
    reinit_prob=0.2,
    alpha=0.1,
    data_noise=0.01,
)
SAMPLE_STEPS = 60  # Langevin steps from noise at sampling time (training chains are CONFIG.num_steps long)
BATCH_SIZE = 128
LR = 3e-4


def build() -> EBM:
    torch.manual_seed(0)
    return EBM(CONFIG)


def train(model: EBM, budget_s: float, device) -> History:
    data = load_digits("train", "continuous")
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH_SIZE, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.0, 0.999))
    return fit(model, loader, epochs=10_000, optimizers=[optimizer], max_seconds=budget_s, clock=CPU_CLOCK, device=device,
               progress=False)


def sample(model: EBM, n: int, generator: torch.Generator) -> Tensor:
    return model.sample(n, generator=generator, num_steps=SAMPLE_STEPS).clamp(0.0, 1.0)


def bits_per_dim(model: EBM, x_test: Tensor) -> float | None:
    return None  # the partition function is intractable
