"""k-nearest-neighbour manifold metrics (Kynkaanniemi et al. 2019) and memorisation.

Each real feature vector gets a ball whose radius is the distance to its k-th nearest real neighbour; the union
of balls estimates the real manifold, and likewise for the generated set.
    precision = fraction of generated samples inside the real manifold   (quality: are samples realistic?)
    recall    = fraction of real samples inside the generated manifold   (coverage: is every mode produced?)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["knn_radii", "precision_recall", "nearest_neighbour_distance"]


def knn_radii(features: Tensor, k: int = 3) -> Tensor:
    """Distance from each row (N, d) to its k-th nearest other row: (N,)."""
    f = features.detach().to(torch.float64).cpu()
    if len(f) <= k:
        raise ValueError(f"need more than k={k} feature vectors, got {len(f)}")
    d = torch.cdist(f, f)  # (N, N), the diagonal is the point itself
    return d.kthvalue(k + 1, dim=1).values


def _coverage(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 2048) -> float:
    inside = []
    for i in range(0, len(points), chunk):
        d = torch.cdist(points[i : i + chunk], centres)  # (c, M)
        inside.append((d <= radii[None]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(real_features: Tensor, fake_features: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of generated features against real ones, both in [0, 1]."""
    real = real_features.detach().to(torch.float64).cpu()
    fake = fake_features.detach().to(torch.float64).cpu()
    precision = _coverage(fake, real, knn_radii(real, k))
    recall = _coverage(real, fake, knn_radii(fake, k))
    return precision, recall


def nearest_neighbour_distance(samples: Tensor, train: Tensor) -> Tensor:
    """Euclidean distance from each sample to its nearest training example (flattened): (n,).

    Small distances compared with the test set's own distances to the training set flag memorised samples.
    """
    s = samples.detach().flatten(1).to(torch.float64).cpu()
    t = train.detach().flatten(1).to(torch.float64).cpu()
    return torch.cat([torch.cdist(s[i : i + 1024], t).min(dim=1).values for i in range(0, len(s), 1024)])
