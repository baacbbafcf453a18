"""Contract cases for the autoencoders: MLP and conv, plain and denoising (Gaussian, masking), MSE and BCE."""

from __future__ import annotations

import torch

from gmlib.models.ae import AEConfig, Autoencoder

from .case import ContractCase


def _case(name: str, **config) -> ContractCase:
    cfg = AEConfig(**{"latent_dim": 3, "hidden": (16,), **config})

    def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return torch.rand(6, *cfg.image_shape, generator=g), torch.randint(0, 10, (6,), generator=g)

    return ContractCase(name=name, make_model=lambda: Autoencoder(cfg), make_batch=make_batch,
                        sample_shape=(4, *cfg.image_shape))


CASES: list[ContractCase] = [
    _case("ae-mlp"),
    _case("ae-conv", arch="conv", hidden=(4, 8)),
    _case("ae-conv-28", arch="conv", hidden=(4, 8), image_shape=(1, 28, 28)),
    _case("ae-denoising-gaussian", noise_std=0.3),
    _case("ae-denoising-masking-bce", arch="conv", hidden=(4,), noise_std=0.25, noise="masking", reconstruction="bce"),
]
