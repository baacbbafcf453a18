"""Contract cases for the GAN family: 2D MLPs and DCGAN images, each loss, spectral norm, conditional."""

from __future__ import annotations

import torch

from gmlib.models.gan import GAN, GANConfig

from .case import ContractCase

_TINY_2D = dict(data="2d", latent_dim=2, hidden=(16, 16))
_TINY_IMAGE = dict(data="image", image_shape=(1, 8, 8), latent_dim=4, channels=4)


def _points() -> torch.Tensor:
    return torch.randn(6, 2, generator=torch.Generator().manual_seed(0))


def _images() -> torch.Tensor:
    return torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _labels() -> torch.Tensor:
    return torch.tensor([0, 1, 2, 0, 1, 2])


CASES: list[ContractCase] = [
    ContractCase(
        name="gan-2d-nonsaturating",
        make_model=lambda: GAN(GANConfig(**_TINY_2D)),
        make_batch=_points,
        sample_shape=(4, 2),
    ),
    ContractCase(
        name="gan-2d-wgan-gp-conditional",
        make_model=lambda: GAN(GANConfig(**_TINY_2D, loss="wgan-gp", n_critic=2, num_classes=3)),
        make_batch=lambda: (_points(), _labels()),
        sample_shape=(4, 2),
        sample_kwargs={"y": 2},  # one int for every sample, whatever n
    ),
    ContractCase(
        name="gan-image-minimax-spectral-norm",
        make_model=lambda: GAN(GANConfig(**_TINY_IMAGE, loss="minimax", spectral_norm=True)),
        make_batch=lambda: (_images(), _labels()),
        sample_shape=(4, 1, 8, 8),
    ),
    ContractCase(
        name="gan-image-hinge-conditional",
        make_model=lambda: GAN(GANConfig(**_TINY_IMAGE, loss="hinge", num_classes=3)),
        make_batch=lambda: (_images(), _labels()),
        sample_shape=(4, 1, 8, 8),
        sample_kwargs={"y": 1},
    ),
    ContractCase(
        name="gan-image-wgan-gp-28x28",
        make_model=lambda: GAN(GANConfig(data="image", image_shape=(1, 28, 28), latent_dim=4, channels=4, loss="wgan-gp")),
        make_batch=lambda: torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)),
        sample_shape=(4, 1, 28, 28),
    ),
]
