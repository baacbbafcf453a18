"""Contract cases for gmlib.models.ebm: 2D points and images, with a replay buffer and short-run from noise."""

import torch

from gmlib.models.ebm import EBM, EBMConfig

from .case import ContractCase


def _points():
    return torch.randn(6, 2, generator=torch.Generator().manual_seed(0))


def _images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 1, 8, 8, generator=g), torch.randint(0, 10, (6,), generator=g)


CASES = [
    ContractCase("ebm-2d", lambda: EBM(EBMConfig(kind="2d", hidden=(16,), num_steps=3, buffer_size=32)),
                 _points, (4, 2)),
    ContractCase("ebm-2d-short-run", lambda: EBM(EBMConfig(kind="2d", hidden=(16,), num_steps=3, buffer_size=0)),
                 _points, (4, 2)),
    ContractCase("ebm-image", lambda: EBM(EBMConfig(kind="image", channels=(4, 8), num_steps=3, buffer_size=32,
                                                    step_size=0.1, noise_scale=0.01)),
                 _images, (4, 1, 8, 8)),
]
