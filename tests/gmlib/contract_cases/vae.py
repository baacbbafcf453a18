"""Contract cases for gmlib.models.vae."""

import torch

from gmlib.models.vae import VAE, VAEConfig

from .case import ContractCase


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 1, 8, 8, generator=g), torch.randint(0, 10, (6,), generator=g)


CASES = [
    ContractCase("vae-bernoulli", lambda: VAE(VAEConfig(latent_dim=3, hidden=(16,))), _batch, (4, 1, 8, 8)),
    ContractCase("vae-gaussian", lambda: VAE(VAEConfig(latent_dim=3, hidden=(16,), likelihood="gaussian")),
                 _batch, (4, 1, 8, 8)),
    ContractCase("vae-conditional", lambda: VAE(VAEConfig(latent_dim=3, hidden=(16,), num_classes=10)), _batch,
                 (4, 1, 8, 8), sample_kwargs={"y": torch.arange(4)}),
]
