"""Sample-quality and likelihood metrics: FID, KID, precision/recall, Inception-style score, bits/dim, AUROC.

    net = feature_network("digits")                  # trained once, cached; net.test_accuracy
    report = evaluate_samples(samples, real, net)    # dict: fid, kid, kid_std, precision, recall, inception_score
"""

from __future__ import annotations

import torch
from torch import Tensor

from .distances import fid, frechet_distance, gaussian_stats, kid, polynomial_mmd2_unbiased
from .features import FEATURE_DIM, FeatureNet, FeatureNetConfig, classifier_accuracy, feature_network
from .manifold import knn_radii, nearest_neighbour_distance, precision_recall
from .scores import auroc, bits_per_dim, dequantized_bits_per_dim, inception_score

__all__ = [
    "fid", "frechet_distance", "gaussian_stats", "kid", "polynomial_mmd2_unbiased",
    "FEATURE_DIM", "FeatureNet", "FeatureNetConfig", "classifier_accuracy", "feature_network",
    "knn_radii", "nearest_neighbour_distance", "precision_recall",
    "auroc", "bits_per_dim", "dequantized_bits_per_dim", "inception_score",
    "features_of", "evaluate_samples",
]


@torch.no_grad()
def features_of(images: Tensor, net: FeatureNet, batch_size: int = 1024) -> tuple[Tensor, Tensor]:
    """Features (N, d) and class probabilities (N, K) of images (N, 1, S, S) in [0, 1]."""
    dev = next(net.parameters()).device
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        f = net.features(images[i : i + batch_size].to(dev).float())
        feats.append(f.cpu())
        probs.append(torch.softmax(net.head(f), dim=1).cpu())
    return torch.cat(feats), torch.cat(probs)


def evaluate_samples(samples: Tensor, real: Tensor, net: FeatureNet, *, k: int = 3) -> dict[str, float]:
    """Every sample-quality metric of generated images against real images, on `net`'s features."""
    if samples.min() < -1e-6 or samples.max() > 1 + 1e-6:
        raise ValueError("samples must be images in [0, 1]")
    fr, _ = features_of(real, net)
    fg, pg = features_of(samples, net)
    kid_mean, kid_std = kid(fr, fg)
    precision, recall = precision_recall(fr, fg, k=k)
    return {"fid": fid(fr, fg), "kid": kid_mean, "kid_std": kid_std, "precision": precision, "recall": recall,
            "inception_score": inception_score(pg)[0]}
