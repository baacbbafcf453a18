"""Contract cases for gmlib.models.rbm: CD-k on digit-shaped inputs and PCD on flat vectors; both small
enough (8 and 6 hidden units) for the exact log-likelihood."""

import torch

from gmlib.models.rbm import RBM, RBMConfig

from .case import ContractCase


def _digits():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(6, 1, 8, 8, generator=g) > 0.5).float(), torch.randint(0, 10, (6,), generator=g)


def _vectors():
    return (torch.rand(6, 10, generator=torch.Generator().manual_seed(0)) > 0.5).float()


CASES = [
    ContractCase("rbm-cd", lambda: RBM(RBMConfig(num_visible=64, num_hidden=8, k=2)), _digits, (4, 1, 8, 8),
                 sample_kwargs={"num_steps": 5}, has_log_prob=True),
    ContractCase("rbm-pcd", lambda: RBM(RBMConfig(num_visible=10, num_hidden=6, persistent=True, num_chains=8,
                                                  image_shape=None)),
                 _vectors, (4, 10), sample_kwargs={"num_steps": 5}, has_log_prob=True),
]
