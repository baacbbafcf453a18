"""Contract cases for the diffusion family: 2D points, digits images, and a class-conditional (CFG) model."""

from __future__ import annotations

import torch

from gmlib.models.ddpm import DDPM, DDPMConfig

from .case import ContractCase


def _model(**kw):
    def make():
        torch.manual_seed(0)
        return DDPM(DDPMConfig(T=10, **kw))

    return make


CASES: list[ContractCase] = [
    ContractCase(
        name="ddpm-2d",
        make_model=_model(kind="2d", widths=(16, 16)),
        make_batch=lambda: torch.randn(6, 2),
        sample_shape=(4, 2),
    ),
    ContractCase(
        name="ddpm-image",
        make_model=_model(kind="image", image_shape=(1, 8, 8), widths=(8, 16)),
        make_batch=lambda: torch.rand(3, 1, 8, 8),
        sample_shape=(4, 1, 8, 8),
    ),
    ContractCase(
        name="ddpm-image-ddim",
        make_model=_model(kind="image", image_shape=(1, 8, 8), widths=(8, 16), schedule="linear"),
        make_batch=lambda: torch.rand(3, 1, 8, 8),
        sample_shape=(4, 1, 8, 8),
        sample_kwargs={"sampler": "ddim", "num_steps": 4, "eta": 0.5},
    ),
    ContractCase(
        name="ddpm-conditional-cfg",
        make_model=_model(kind="image", image_shape=(1, 8, 8), widths=(8, 16), num_classes=10, p_uncond=0.2),
        make_batch=lambda: (torch.rand(3, 1, 8, 8), torch.tensor([0, 3, 9])),
        sample_shape=(4, 1, 8, 8),
        sample_kwargs={"y": 3, "guidance_scale": 2.0, "sampler": "ddim", "num_steps": 5},
    ),
]
