"""Metrics against independent computations: scipy's matrix square root, brute-force loops, sklearn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.metrics import roc_auc_score

from gmlib.metrics import (
    auroc,
    bits_per_dim,
    dequantized_bits_per_dim,
    evaluate_samples,
    feature_network,
    fid,
    frechet_distance,
    inception_score,
    kid,
    polynomial_mmd2_unbiased,
    precision_recall,
)


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's general (non-symmetric) matrix square root."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_matches_scipy_sqrtm():
    """Does FID equal the formula computed with scipy.linalg.sqrtm on the same features?"""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 6, generator=g, dtype=torch.float64)
    b = torch.randn(400, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64) + 0.7
    assert fid(a, b) == pytest.approx(scipy_fid(a.numpy(), b.numpy()), rel=1e-6)


def test_frechet_distance_of_one_dimensional_gaussians_is_closed_form():
    """For 1D Gaussians is the distance (m1 - m2)^2 + (s1 - s2)^2?"""
    value = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-1.0]), torch.tensor([[9.0]]))
    assert value == pytest.approx(4.0 + 1.0)
    assert fid(torch.randn(100, 3), torch.randn(100, 3)) >= 0


def test_kid_unbiased_mmd_matches_a_brute_force_loop():
    """Does the vectorised unbiased MMD^2 equal the double sum over distinct pairs?"""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.randn(5, 3, generator=g, dtype=torch.float64) + 0.5
    k = lambda a, b: (float(a @ b) / 3 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / 35
    assert polynomial_mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    """Is KID about 0 (within its spread) for two samples of one distribution and clearly positive otherwise?"""
    g = torch.Generator().manual_seed(2)
    same = kid(torch.randn(600, 4, generator=g), torch.randn(600, 4, generator=g), subset_size=200)
    diff = kid(torch.randn(600, 4, generator=g), torch.randn(600, 4, generator=g) + 1.0, subset_size=200)
    assert abs(same[0]) < 3 * same[1] + 1e-3
    assert diff[0] > 10 * diff[1]


def brute_precision_recall(real, fake, k):
    def radii(s):
        return [sorted(float((s[i] - s[j]).norm()) for j in range(len(s)) if j != i)[k - 1] for i in range(len(s))]

    rr, rf = radii(real), radii(fake)
    precision = np.mean([any(float((f - r).norm()) <= rr[j] for j, r in enumerate(real)) for f in fake])
    recall = np.mean([any(float((r - f).norm()) <= rf[j] for j, f in enumerate(fake)) for r in real])
    return precision, recall


def test_precision_recall_match_brute_force():
    """Do precision and recall equal the definition evaluated with explicit loops?"""
    g = torch.Generator().manual_seed(3)
    real = torch.randn(40, 2, generator=g, dtype=torch.float64)
    fake = torch.randn(30, 2, generator=g, dtype=torch.float64) * 0.5 + 0.8
    assert precision_recall(real, fake, k=3) == pytest.approx(brute_precision_recall(real, fake, 3))


def test_mode_dropping_keeps_precision_but_loses_recall():
    """Does a generator that produces only one of two modes keep precision near 1 and lose about half the recall?"""
    g = torch.Generator().manual_seed(4)
    real = torch.cat([torch.randn(300, 2, generator=g) - 5, torch.randn(300, 2, generator=g) + 5])
    fake = torch.randn(300, 2, generator=g) + 5
    precision, recall = precision_recall(real, fake)
    assert precision > 0.9 and 0.35 < recall < 0.55


def test_inception_score_limits():
    """Is IS 1 for identical predictions and K for confident predictions spread evenly over K classes?"""
    assert inception_score(torch.full((10, 4), 0.25))[0] == pytest.approx(1.0)
    assert inception_score(torch.eye(4).repeat(5, 1))[0] == pytest.approx(4.0, rel=1e-6)
    with pytest.raises(ValueError, match="softmax"):
        inception_score(torch.randn(3, 4))


def test_auroc_matches_sklearn_including_ties():
    """Does AUROC equal sklearn's roc_auc_score, ties included?"""
    g = torch.Generator().manual_seed(5)
    normal = torch.randint(0, 5, (50,), generator=g).double()
    anomalous = torch.randint(2, 8, (30,), generator=g).double()
    labels = np.r_[np.zeros(50), np.ones(30)]
    assert auroc(normal, anomalous) == pytest.approx(roc_auc_score(labels, np.r_[normal.numpy(), anomalous.numpy()]))
    assert auroc(torch.zeros(3), torch.ones(3)) == 1.0


def test_bits_per_dim_bookkeeping():
    """Is bits/dim NLL / (D ln 2), and does dequantisation add log2(1/w) bits per dimension?"""
    assert bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    # a uniform density on [0, 1)^D (log p = 0) with 17 bins per dim is the uniform discrete model: log2(17) bits
    assert dequantized_bits_per_dim(0.0, 64, 1 / 17) == pytest.approx(math.log2(17))


@pytest.mark.slow
def test_digits_feature_network_is_accurate_and_separates_real_from_noise():
    """Does the cached digits classifier reach high test accuracy, and do the metrics rank real data above noise?"""
    from gmlib.data import load_digits

    net = feature_network("digits")
    assert net.test_accuracy > 0.95
    train, test = load_digits("train").tensors[0], load_digits("test").tensors[0]
    real = evaluate_samples(test, train, net)
    noise = evaluate_samples(torch.rand(359, 1, 8, 8, generator=torch.Generator().manual_seed(0)), train, net)
    assert real["fid"] < 0.1 * noise["fid"]
    assert real["precision"] > 0.8 > 0.2 > noise["precision"]
    assert real["inception_score"] > 8 > 3 > noise["inception_score"]
    again = feature_network("digits")  # loaded from the cache: identical weights
    for p, q in zip(net.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(p, q)
