"""Contract cases for the PixelCNN family: plain and gated, unconditional and class-conditional, 2 and 17 levels."""

from __future__ import annotations

import torch

from gmlib.models.pixelcnn import PixelCNN, PixelCNNConfig

from .case import ContractCase


def _model(**kw):
    def make():
        torch.manual_seed(0)
        cfg = dict(image_shape=(1, 4, 4), channels=8, num_layers=2, first_kernel_size=3, kernel_size=3)
        return PixelCNN(PixelCNNConfig(**{**cfg, **kw}))

    return make


def _images(levels: int, n: int = 3, image_shape=(1, 4, 4)) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, levels, (n, *image_shape), generator=g).float() / (levels - 1)


CASES: list[ContractCase] = [
    ContractCase(
        name="pixelcnn-binary",
        make_model=_model(levels=2),
        make_batch=lambda: _images(2),
        sample_shape=(4, 1, 4, 4),
        has_log_prob=True,
    ),
    ContractCase(
        name="pixelcnn-17-levels",
        make_model=_model(levels=17, dropout=0.1),
        make_batch=lambda: (_images(17), torch.tensor([0, 1, 2])),  # labels ignored by an unconditional model
        sample_shape=(4, 1, 4, 4),
        has_log_prob=True,
    ),
    ContractCase(
        name="pixelcnn-gated",
        make_model=_model(levels=17, gated=True),
        make_batch=lambda: _images(17),
        sample_shape=(4, 1, 4, 4),
        has_log_prob=True,
    ),
    ContractCase(
        name="pixelcnn-gated-conditional",
        make_model=_model(levels=5, gated=True, num_classes=3),
        make_batch=lambda: (_images(5), torch.tensor([0, 1, 2])),
        sample_shape=(4, 1, 4, 4),
        sample_kwargs={"y": torch.tensor([0, 1, 2, 0])},
        has_log_prob=False,  # exact, but log_prob(x, y) needs the labels, which the contract's log_prob(x) lacks
    ),
    ContractCase(
        name="pixelcnn-plain-conditional-rgb",
        make_model=_model(levels=4, num_classes=2, image_shape=(3, 4, 4)),
        make_batch=lambda: (_images(4, image_shape=(3, 4, 4)), torch.tensor([0, 1, 1])),
        sample_shape=(4, 3, 4, 4),
        sample_kwargs={"y": torch.tensor([0, 1, 0, 1])},
        has_log_prob=False,  # as above: log_prob(x, y) needs the labels
    ),
]
