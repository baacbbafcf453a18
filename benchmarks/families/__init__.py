"""One module per model family for benchmarks/run.py. Each module defines:

    NAME: str                                        family name in the results table
    build() -> nn.Module                             the model for 8x8 digits (configured for the benchmark)
    train(model, budget_s: float, device) -> History  train on load_digits("train") for at most budget_s seconds
    sample(model, n: int, generator) -> Tensor       (n, 1, 8, 8) float in [0, 1]
    bits_per_dim(model, x_test) -> float | None      exact test bits/dim where the family has one, else None
"""

import time

import torch
from torch import nn

CPU_CLOCK = time.process_time  # training budgets are CPU seconds (one torch thread): a busy machine does not shrink them


class EMA:
    """Callback for `fit`: after each step, ema <- decay * ema + (1 - decay) * weights, for the parameters of
    `module` (decay warmed up as min(decay, (1 + step) / (10 + step))). `copy_to_model` installs the average."""

    def __init__(self, module: nn.Module, decay: float):
        self.params = list(module.parameters())
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int, logs: dict) -> None:
        if self.shadow[0].device != self.params[0].device:  # fit moved the model after we were made
            self.shadow = [s.to(p.device) for s, p in zip(self.shadow, self.params, strict=True)]
        decay = min(self.decay, (1 + step) / (10 + step))
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p.detach(), 1.0 - decay)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for s, p in zip(self.shadow, self.params, strict=True):
            p.copy_(s)
