"""The mutual information gap: discrete MI against scikit-learn and a brute-force sum, MIG on constructed codes."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import mutual_info_score

from gmlib.metrics.disentanglement import (
    discretize,
    disentanglement_report,
    mig_gaps,
    mutual_information,
    mutual_information_matrix,
)


def brute_force_mi(a, b) -> float:
    """sum over (i, j) of p(i, j) log(p(i, j) / (p(i) p(j))), one loop iteration per pair of values."""
    n, total = len(a), 0.0
    for i in set(a.tolist()):
        for j in set(b.tolist()):
            pij = ((a == i) & (b == j)).sum().item() / n
            if pij > 0:
                total += pij * math.log(pij / (((a == i).sum().item() / n) * ((b == j).sum().item() / n)))
    return total


def test_mutual_information_matches_sklearn_and_brute_force():
    """Is the MI in nats equal to sklearn's mutual_info_score and to a direct double sum, for any label values?"""
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (400,), generator=g)
    b = (a * 3 + torch.randint(0, 3, (400,), generator=g)) % 7 - 10  # dependent, negative labels
    mi = mutual_information(a, b)
    assert mi.dtype == torch.float64 and mi.dim() == 0
    assert mi.item() == pytest.approx(mutual_info_score(a.numpy(), b.numpy()), abs=1e-10)
    assert mi.item() == pytest.approx(brute_force_mi(a, b), abs=1e-10)


def test_self_information_is_the_entropy_and_independence_gives_zero():
    """Is I(v; v) = H(v) (log 8 for 8 equal classes), and I = 0 for a product design?"""
    v = torch.arange(8).repeat(10)
    assert mutual_information(v, v).item() == pytest.approx(math.log(8))
    a, b = torch.cartesian_prod(torch.arange(4), torch.arange(3)).T
    assert mutual_information(a, b).item() == pytest.approx(0.0, abs=1e-12)


def test_discretize_uses_equal_bins_on_the_span_and_clips():
    """Are values binned on [-span, span] in num_bins equal bins, with the outside in the end bins?"""
    z = torch.tensor([[-5.0, -2.99, -1.0, 0.0, 0.99, 1.01, 2.99, 7.0]]).T  # (8, 1)
    assert discretize(z, num_bins=3, span=3.0)[:, 0].tolist() == [0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError):
        discretize(z, num_bins=0)


def test_mig_is_one_for_a_perfect_code_and_zero_for_a_duplicated_one():
    """One latent per factor gives gaps of 1; the same latent copied twice gives gaps of 0."""
    factors = torch.cartesian_prod(torch.arange(4), torch.arange(5))  # (20, 2)
    z = factors.float() - 2.0  # latent j = factor j, one bin per value with span 3 and 6 bins
    report = disentanglement_report(z, factors, num_bins=6)
    torch.testing.assert_close(report["gaps"], torch.ones(2, dtype=torch.float64))
    assert report["mig"] == pytest.approx(1.0)
    twice = disentanglement_report(torch.cat([z[:, :1], z[:, :1]], 1), factors, num_bins=6)
    assert twice["gaps"][0].item() == pytest.approx(0.0, abs=1e-12)


def test_mig_gaps_sort_over_latents_and_normalise():
    """Is each factor's gap (largest - second largest MI over the latents) / H?"""
    mi = torch.tensor([[0.9, 0.1], [0.3, 0.5], [0.1, 0.45]], dtype=torch.float64)
    torch.testing.assert_close(mig_gaps(mi, torch.tensor([1.8, 0.5], dtype=torch.float64)),
                               torch.tensor([0.6 / 1.8, 0.05 / 0.5], dtype=torch.float64))
    with pytest.raises(ValueError):
        mig_gaps(mi[:1], torch.ones(2))


def test_matrix_shape_and_the_use_argument():
    """Is the MI matrix (d, K), and does `use` average over the chosen factors only?"""
    g = torch.Generator().manual_seed(1)
    factors = torch.randint(0, 3, (300, 3), generator=g)
    z = torch.randn(300, 4, generator=g)
    assert mutual_information_matrix(discretize(z), factors).shape == (4, 3)
    report = disentanglement_report(z, factors, use=[0, 2])
    assert report["mig"] == pytest.approx(report["gaps"][[0, 2]].mean().item())
    with pytest.raises(ValueError):
        mutual_information(torch.zeros(3), torch.zeros(4))
