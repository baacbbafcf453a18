"""Scores from a classifier and for likelihoods.

Inception-style score (Salimans et al. 2016) with the course's own classifier:
    IS = exp( E_x KL(p(y|x) || p(y)) ),  p(y) = E_x p(y|x);   1 <= IS <= number of classes

Likelihood bookkeeping. A model of discrete data gives log P(x) in nats for an image of D values:
    NLL = -log P(x);   bits/dim = NLL / (D ln 2)
A continuous density p fitted to dequantized data y = (k + u) * w (u ~ U[0,1)^D, bin width w, e.g. w = 1/17 for
the 17 grey levels of digits rescaled to [0, 1)) bounds the discrete model from below:
    log P(k) >= E_u[log p(y)] + D log w
so its discrete bits/dim is at most -(log p(y) + D log w) / (D ln 2). Forgetting the D log w term is the most
common mistake: it makes a continuous model look better than it is (w < 1) by log2(1/w) bits per dimension.

AUROC for anomaly scores: the probability that a random anomaly scores higher than a random normal example
(ties count one half), the Mann-Whitney U statistic divided by n_anomalies * n_normal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["inception_score", "bits_per_dim", "dequantized_bits_per_dim", "auroc"]


def inception_score(probs: Tensor, num_splits: int = 1) -> tuple[float, float]:
    """IS from class probabilities (N, K): mean and std over `num_splits` equal splits."""
    p = probs.detach().to(torch.float64).cpu()
    if p.dim() != 2 or (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-4):
        raise ValueError("probs must be (N, K) rows of class probabilities summing to 1 (use softmax of logits)")
    scores = []
    for part in torch.tensor_split(p, num_splits):
        marginal = part.mean(0, keepdim=True)
        kl = (part * (part.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
        scores.append(math.exp(kl.mean().item()))
    s = torch.tensor(scores)
    return float(s.mean()), float(s.std()) if num_splits > 1 else 0.0


def bits_per_dim(nll_nats: Tensor | float, num_dims: int) -> Tensor | float:
    """Negative log-likelihood in nats per example -> bits per dimension."""
    return nll_nats / (num_dims * math.log(2))


def dequantized_bits_per_dim(log_density: Tensor | float, num_dims: int, bin_width: float) -> Tensor | float:
    """Discrete bits/dim bound from a continuous log-density of dequantized data with bins of width `bin_width`."""
    return -(log_density + num_dims * math.log(bin_width)) / (num_dims * math.log(2))


def auroc(scores_normal: Tensor, scores_anomalous: Tensor) -> float:
    """Area under the ROC curve for "higher score = more anomalous"."""
    neg = torch.as_tensor(scores_normal, dtype=torch.float64).flatten().cpu()
    pos = torch.as_tensor(scores_anomalous, dtype=torch.float64).flatten().cpu()
    if len(neg) == 0 or len(pos) == 0:
        raise ValueError("AUROC needs at least one normal and one anomalous score")
    allv = torch.cat([neg, pos])
    order = allv.argsort()
    ranks = torch.empty_like(allv)
    sorted_v = allv[order]
    # average ranks (1-based) over ties
    _, inverse, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    avg = ends - (counts.double() - 1) / 2
    ranks[order] = avg[inverse]
    u = ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))
