"""Disentanglement against known factors: the mutual information gap, MIG (Chen et al., 2018).

Notation as in course lesson 10:
    z (N, d) codes (a VAE's encoder means), v (N, K) the true factor indices of the same N images
    c_j = discretize(z_j)            each latent cut into equal-width bins on [-span, span] (the prior's range)
    I(c_j; v_k) = sum_{a,b} p(a, b) log( p(a, b) / (p(a) p(b)) )        empirical, in nats
    H(v_k) = I(v_k; v_k)
    gap_k = ( I(c_(1); v_k) - I(c_(2); v_k) ) / H(v_k)      (1), (2): the latents with the largest and the
                                                             second largest information about factor k
    MIG = mean over factors of gap_k, in [0, 1]
A factor captured by one latent alone scores near 1; a factor spread over several latents, or captured by
none, scores near 0. Bins on a fixed range (rather than between each latent's min and max) put an unused latent
(mean near 0 for every image) into one or two bins, so it carries no information, as it should.

    report = disentanglement_report(z, factors)   # dict: mi (d, K), entropy (K,), gaps (K,), mig
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["discretize", "mutual_information", "mutual_information_matrix", "mig_gaps", "disentanglement_report"]


def discretize(z: Tensor, num_bins: int = 20, span: float = 3.0) -> Tensor:
    """Equal-width bins on [-span, span] per entry: (N, d) floats -> (N, d) long in 0..num_bins-1; values
    outside the range fall into the first or last bin."""
    if num_bins < 1 or span <= 0:
        raise ValueError(f"need num_bins >= 1 and span > 0, got {num_bins} and {span}")
    edges = torch.linspace(-span, span, num_bins + 1, dtype=torch.float64)[1:-1]  # (num_bins - 1,) inner edges
    return torch.bucketize(z.detach().double().cpu().contiguous(), edges, right=True)


def mutual_information(a: Tensor, b: Tensor) -> Tensor:
    """Empirical mutual information (nats, float64 scalar) of two discrete labellings (N,) of the same items;
    labels may be any integers (only equality matters)."""
    if a.dim() != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"a and b must be non-empty (N,) label vectors, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    _, ia = torch.unique(a.cpu(), return_inverse=True)  # (N,) in 0..na-1
    _, ib = torch.unique(b.cpu(), return_inverse=True)
    na, nb = int(ia.max()) + 1, int(ib.max()) + 1
    joint = torch.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb).double() / len(a)  # (na, nb)
    pa, pb = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    nz = joint > 0
    return (joint[nz] * (joint[nz] / (pa * pb)[nz]).log()).sum()


def mutual_information_matrix(codes: Tensor, factors: Tensor) -> Tensor:
    """I(codes[:, j]; factors[:, k]) for every latent j and factor k: (N, d), (N, K) integer labels -> (d, K)."""
    if codes.dim() != 2 or factors.dim() != 2 or len(codes) != len(factors):
        raise ValueError(f"codes (N, d) and factors (N, K) must be 2D with the same N, got {tuple(codes.shape)} "
                         f"and {tuple(factors.shape)}")
    return torch.stack([torch.stack([mutual_information(codes[:, j], factors[:, k]) for k in range(factors.shape[1])])
                        for j in range(codes.shape[1])])


def mig_gaps(mi: Tensor, factor_entropy: Tensor) -> Tensor:
    """Per-factor normalised gap between the two latents most informative about it: (d, K), (K,) -> (K,)."""
    if mi.dim() != 2 or mi.shape[0] < 2 or factor_entropy.shape != (mi.shape[1],):
        raise ValueError(f"mi must be (d, K) with d >= 2 and factor_entropy (K,), got {tuple(mi.shape)} and "
                         f"{tuple(factor_entropy.shape)}")
    top2 = mi.topk(2, dim=0).values  # (2, K): largest and second largest over the latents
    return (top2[0] - top2[1]) / factor_entropy


def disentanglement_report(
    z: Tensor, factors: Tensor, *, num_bins: int = 20, span: float = 3.0, use: Sequence[int] | None = None
) -> dict:
    """MIG of codes z (N, d) against factor indices (N, K): {"mi" (d, K), "entropy" (K,), "gaps" (K,),
    "mig" (float, the mean gap over the factors in `use`, default all)}."""
    codes = discretize(z, num_bins, span)
    mi = mutual_information_matrix(codes, factors)
    entropy = torch.stack([mutual_information(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])
    gaps = mig_gaps(mi, entropy)
    use = list(range(factors.shape[1])) if use is None else list(use)
    return {"mi": mi, "entropy": entropy, "gaps": gaps, "mig": float(gaps[use].mean())}
