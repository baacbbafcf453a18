"""The shape of one contract case (shared by every family's case module)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ContractCase:
    """A tiny model and a batch for it.

    name:          id shown by pytest, e.g. "vae-conditional"
    make_model:    () -> nn.Module, tiny (runs in well under a second on a CPU)
    make_batch:    () -> what model.loss(batch) takes (a tensor or a tuple like (x, y))
    sample_shape:  shape of model.sample(n=4, generator=g, **sample_kwargs)
    sample_kwargs: extra keyword arguments for sample (e.g. labels for a conditional model)
    has_log_prob:  True where the family has an exact log-likelihood: model.log_prob(x) -> (B,)
    log_prob_input: () -> x for log_prob (defaults to the batch's first tensor)
    """

    name: str
    make_model: Callable[[], nn.Module]
    make_batch: Callable[[], object]
    sample_shape: tuple[int, ...]
    sample_kwargs: dict = field(default_factory=dict)
    has_log_prob: bool = False
    log_prob_input: Callable[[], torch.Tensor] | None = None
