"""Contract cases for the character-level transformer (the n-gram model is fitted by counting, not by `loss`).

`sample` returns strings by default; `as_ids=True` returns the (n, length) index tensor the contract checks.
"""

from __future__ import annotations

import torch

from gmlib.models.text import CharTransformer, CharTransformerConfig

from .case import ContractCase


def _model():
    torch.manual_seed(0)
    return CharTransformer(CharTransformerConfig(block_size=8, n_layer=1, n_head=2, n_embd=16))


def _batch() -> torch.Tensor:
    return torch.randint(0, 96, (3, 8), generator=torch.Generator().manual_seed(1))  # (B, T) indices


CASES: list[ContractCase] = [
    ContractCase(
        name="char-transformer",
        make_model=_model,
        make_batch=_batch,
        sample_shape=(4, 6),
        sample_kwargs={"length": 6, "as_ids": True},
        has_log_prob=True,
    ),
    ContractCase(
        name="char-transformer-windows",
        make_model=_model,
        make_batch=lambda: (_batch(),),  # a TensorDataset batch: a 1-tuple
        sample_shape=(4, 10),
        sample_kwargs={"length": 6, "prompt": "abcd", "as_ids": True, "temperature": 0.8, "top_k": 5},
        has_log_prob=True,
    ),
]
