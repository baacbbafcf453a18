"""Contract cases for the VQ-VAE: 4x4 and 2x2 code grids, EMA codebook with dead-code resets, BCE, 28x28."""

from __future__ import annotations

import torch

from gmlib.models.vqvae import VQVAE, VQVAEConfig

from .case import ContractCase


def _case(name: str, **config) -> ContractCase:
    cfg = VQVAEConfig(**{"codebook_size": 8, "code_dim": 4, "channels": 8, **config})

    def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return torch.rand(6, *cfg.image_shape, generator=g), torch.randint(0, 10, (6,), generator=g)

    return ContractCase(name=name, make_model=lambda: VQVAE(cfg), make_batch=make_batch,
                        sample_shape=(4, *cfg.image_shape))


CASES: list[ContractCase] = [
    _case("vqvae-4x4"),
    _case("vqvae-2x2-bce", num_downsamples=2, reconstruction="bce"),
    _case("vqvae-ema-dead-codes", ema=True, dead_code_threshold=0.5),
    _case("vqvae-28", image_shape=(1, 28, 28), num_downsamples=2, num_res_blocks=0),
]
