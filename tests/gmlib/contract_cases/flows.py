"""Contract cases for the normalizing flows: 2D (with and without actnorm / 1x1), images with conv and MLP
couplings, and an image flow that dequantizes grey levels itself."""

from __future__ import annotations

import torch

from gmlib.models.flows import FlowConfig, RealNVP

from .case import ContractCase


def _points() -> torch.Tensor:
    return torch.randn(8, 2, generator=torch.Generator().manual_seed(0))


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = (torch.randint(0, 17, (6, 1, 4, 4), generator=g).float() + torch.rand(6, 1, 4, 4, generator=g)) / 17
    return x, torch.zeros(6, dtype=torch.long)


def _levels() -> torch.Tensor:
    return torch.randint(0, 17, (6, 1, 4, 4), generator=torch.Generator().manual_seed(0)).float() / 16


def _model(**kwargs):
    def make() -> RealNVP:
        torch.manual_seed(0)
        return RealNVP(FlowConfig(**kwargs))

    return make


CASES: list[ContractCase] = [
    ContractCase(
        name="flows-2d",
        make_model=_model(kind="2d", num_layers=2, hidden=8),
        make_batch=lambda: (_points(),),
        sample_shape=(4, 2),
        has_log_prob=True,
    ),
    ContractCase(
        name="flows-2d-plain",
        make_model=_model(kind="2d", num_layers=2, hidden=8, use_actnorm=False, use_1x1=False),
        make_batch=_points,
        sample_shape=(4, 2),
        has_log_prob=True,
    ),
    ContractCase(
        name="flows-image-conv",
        make_model=_model(kind="image", image_shape=(1, 4, 4), num_layers=2, num_blocks=2, hidden=4, levels=17),
        make_batch=_images,
        sample_shape=(4, 1, 4, 4),
        has_log_prob=True,
    ),
    ContractCase(
        name="flows-image-mlp",
        make_model=_model(kind="image", image_shape=(1, 4, 4), num_layers=2, num_blocks=2, hidden=8,
                          coupling_net="mlp"),
        make_batch=_images,
        sample_shape=(4, 1, 4, 4),
        has_log_prob=True,
    ),
    ContractCase(
        name="flows-image-dequantize",
        make_model=_model(kind="image", image_shape=(1, 4, 4), num_layers=1, num_blocks=1, hidden=4, levels=17,
                          dequantize=True),
        make_batch=_levels,
        sample_shape=(4, 1, 4, 4),
        has_log_prob=True,
        log_prob_input=lambda: _images()[0],
    ),
]
