"""Distribution distances on feature vectors: FID (Heusel et al. 2017) and KID (Binkowski et al. 2018).

    FID = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))      Frechet distance of two Gaussians
    KID = unbiased MMD^2 with the kernel k(a, b) = (a.b / d + 1)^3, averaged over random subsets

Both take feature matrices (N, d); `features_of` turns images into features with a feature network.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gaussian_stats", "frechet_distance", "fid", "kid", "polynomial_mmd2_unbiased"]


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (d,) and unbiased covariance (d, d) of features (N, d), in float64."""
    f = features.detach().to(torch.float64).cpu()
    if f.dim() != 2 or len(f) < 2:
        raise ValueError(f"features must be (N, d) with N >= 2, got shape {tuple(f.shape)}")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def _sqrt_psd(m: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Frechet (2-Wasserstein) distance squared between N(mu1, cov1) and N(mu2, cov2).

    Tr((S1 S2)^(1/2)) is computed as Tr((S1^(1/2) S2 S1^(1/2))^(1/2)), a symmetric PSD matrix with the same
    eigenvalues, so only symmetric eigendecompositions are needed (no complex parts to discard).
    """
    mu1, mu2 = mu1.to(torch.float64), mu2.to(torch.float64)
    cov1, cov2 = cov1.to(torch.float64), cov2.to(torch.float64)
    s1 = _sqrt_psd(cov1)
    cross = torch.linalg.eigvalsh(s1 @ cov2 @ s1).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * cross
    return float(value.clamp_min(0))


def fid(real_features: Tensor, fake_features: Tensor) -> float:
    """FID between two feature sets (N, d) and (M, d)."""
    return frechet_distance(*gaussian_stats(real_features), *gaussian_stats(fake_features))


def polynomial_mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased MMD^2 between samples x (n, d) and y (m, d) with k(a, b) = (a.b / d + 1)^3."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    n, m = len(x), len(y)
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(term_x + term_y - 2 * kxy.mean())


def kid(real_features: Tensor, fake_features: Tensor, *, num_subsets: int = 20, subset_size: int = 200,
        generator: torch.Generator | None = None) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased polynomial MMD^2 over random subsets (without replacement
    inside a subset). `subset_size` is capped at the smaller set's size."""
    real = real_features.detach().cpu().to(torch.float64)
    fake = fake_features.detach().cpu().to(torch.float64)
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    g = generator or torch.Generator().manual_seed(0)
    values = torch.tensor([
        polynomial_mmd2_unbiased(real[torch.randperm(len(real), generator=g)[:size]],
                                 fake[torch.randperm(len(fake), generator=g)[:size]])
        for _ in range(num_subsets)
    ])
    return float(values.mean()), float(values.std()) if num_subsets > 1 else 0.0
