"""VAE on digits (continuous [0, 1], Bernoulli decoder); samples are decoder means."""

from __future__ import annotations

import torch

from benchmarks.families import CPU_CLOCK
from gmlib.data import digits_loader
from gmlib.models.vae import VAE, VAEConfig
from gmlib.train import fit

NAME = "vae"


def build():
    return VAE(VAEConfig(latent_dim=8, hidden=(256, 128)))


def train(model, budget_s, device):
    return fit(model, digits_loader("train", batch_size=64), epochs=10_000, lr=1e-3, max_seconds=budget_s, clock=CPU_CLOCK,
               device=device, progress=False)


@torch.no_grad()
def sample(model, n, generator):
    return model.sample(n, generator=generator).cpu()


def bits_per_dim(model, x_test):
    return None  # the ELBO only bounds the likelihood; the table reports exact values only
