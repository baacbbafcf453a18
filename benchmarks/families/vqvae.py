"""VQ-VAE on digits (continuous [0, 1], MSE reconstruction) with a 2x2 grid of K = 16 codes, and a PixelCNN
prior over that grid (van den Oord et al., 2017: the two-stage recipe of lesson 10).

Stage 1 (PRIOR_SHARE of the budget left to the autoencoder): train the VQ-VAE. Stage 2: encode the training
images to their (2, 2) code grids and fit a small PixelCNN over the 16 code values (as grey levels k / 15) for
the rest of the budget. Samples: code grids from the PixelCNN, decoded. The row `vqvae` is this pair; the same
autoencoder with the weak independent-position prior (`sample(prior="histogram")`) is kept for comparison in
the tuning notes below. No exact likelihood of images: bits/dim is None.

Tuning notes (120 s on a shared 2-core CPU, one torch thread, about 2000 autoencoder steps): held-out
reconstruction MSE 0.016, all 16 codes used (perplexity 15.8); FID of reconstructions 0.7; samples from the
independent histogram prior 5.1 (the four quarters of a sample need not belong to the same digit). K = 32 or
64 reconstructs a little better but sampled slightly worse with that prior; a 4x4 grid reconstructs best (MSE
0.004) and sampled worst (FID 20) with it, since 16 independent positions disagree more than 4.
"""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.families import CPU_CLOCK
from gmlib.data import digits_loader, load_digits
from gmlib.models.pixelcnn import PixelCNN, PixelCNNConfig
from gmlib.models.vqvae import VQVAE, VQVAEConfig, indices_to_levels
from gmlib.train import fit

NAME = "vqvae"
CODEBOOK_SIZE = 16
PRIOR_SHARE = 0.3  # of the CPU budget, for the PixelCNN prior (it is small: the grid has 4 positions)


class VQVAEWithPrior(nn.Module):
    """The autoencoder and the PixelCNN over its code grid, counted and trained as one benchmark row."""

    def __init__(self):
        super().__init__()
        self.vqvae = VQVAE(VQVAEConfig(codebook_size=CODEBOOK_SIZE, code_dim=16, channels=64, num_downsamples=2,
                                       num_res_blocks=1, beta=0.25, dead_code_threshold=0.05))
        grid = self.vqvae.grid_shape
        self.prior = PixelCNN(PixelCNNConfig(image_shape=(1, *grid), levels=CODEBOOK_SIZE, channels=64, num_layers=3,
                                             first_kernel_size=3, kernel_size=3, dropout=0.1))


def build():
    return VQVAEWithPrior()


def train(model, budget_s, device):
    history = fit(model.vqvae, digits_loader("train", batch_size=64), epochs=10_000, lr=1e-3,
                  max_seconds=(1 - PRIOR_SHARE) * budget_s, clock=CPU_CLOCK, device=device, progress=False)
    x_train = load_digits("train").tensors[0].to(device)
    model.vqvae.fit_code_histogram(x_train)  # the weak prior, for comparison
    with torch.no_grad():
        codes = indices_to_levels(model.vqvae.encode_indices(x_train), CODEBOOK_SIZE).cpu()  # (N, 1, h, w)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(codes), batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    fit(model.prior, loader, epochs=10_000, lr=2e-3, max_seconds=PRIOR_SHARE * budget_s, clock=CPU_CLOCK,
        device=device, progress=False)
    return history


@torch.no_grad()
def sample(model, n, generator):
    model.eval()
    return model.vqvae.sample(n, generator=generator, prior=model.prior).cpu()


def bits_per_dim(model, x_test):
    return None  # a VQ-VAE has no exact likelihood
