"""Bernoulli RBM on binarized 8x8 digits, trained by PCD-1 (Tieleman, 2008); samples by block Gibbs sampling from
random visibles, returned as the visible probabilities p(v | h) of the last step (in [0, 1]).

Bits/dim: exact when min(num_visible, num_hidden) <= 20 (log Z by enumerating the hidden units), on the
BINARIZED test digits (one bit per pixel at most), so not comparable with the grey-level families' numbers;
None for larger models, such as the 128 hidden units used here.

Tuning notes (digits FID on the course's feature network; the binarized training digits themselves score about
3.5; 120 s, about 33k PCD updates): PCD-1 with 128 hidden units, lr 0.01, momentum 0.5, weight decay 1e-3 and
the visible biases initialised from the pixel means reached FID about 10.6 with 1000 Gibbs sweeps from random
visibles (CD-1 at lr 0.05 about 10.4 but lower test pseudo-likelihood; without the bias initialisation both were
worse, 17-20; PCD with momentum 0.9 diverged to FID 188). With 20 hidden units the exact test bits/dim is about
0.42 but samples are blurry (FID about 36).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from benchmarks.families import CPU_CLOCK
from gmlib.data import load_digits
from gmlib.models.rbm import MAX_ENUMERATION_BITS, RBM, RBMConfig
from gmlib.train import History, fit

NAME = "rbm"

CONFIG = RBMConfig(num_visible=64, num_hidden=128, k=1, persistent=True, num_chains=256, lr=0.01,
                   momentum=0.5, l2=1e-3, image_shape=(1, 8, 8))
SAMPLE_STEPS = 1000
BATCH_SIZE = 64
INIT_VISIBLE_BIAS = True  # b from the pixel means (Hinton's practical guide)


def build() -> RBM:
    torch.manual_seed(0)
    return RBM(CONFIG)


def train(model: RBM, budget_s: float, device) -> History:
    data = load_digits("train", "binarized")
    if INIT_VISIBLE_BIAS:
        model.init_visible_bias(data.tensors[0])
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH_SIZE, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    return fit(model, loader, epochs=100_000, optimizers=model.optimizers(), max_seconds=budget_s,
               clock=CPU_CLOCK, device=device,
               progress=False)


def sample(model: RBM, n: int, generator: torch.Generator) -> Tensor:
    return model.sample(n, generator=generator, num_steps=SAMPLE_STEPS, probabilities=True)


def bits_per_dim(model: RBM, x_test: Tensor) -> float | None:
    """Exact test bits/dim on binarized digits when log Z is tractable, else None."""
    cfg = model.config
    if min(cfg.num_visible, cfg.num_hidden) > MAX_ENUMERATION_BITS:
        return None
    v = (x_test >= 0.5).float() if not torch.all((x_test == 0) | (x_test == 1)) else x_test
    log_p = model.log_prob_exact(v.to(model.W.device))  # (N,) nats
    return float(-log_p.mean()) / (cfg.num_visible * math.log(2))
