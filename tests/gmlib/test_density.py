"""Histogram, KDE and Gaussian mixture (EM) against independent references: scikit-learn's GaussianMixture and
KernelDensity, SciPy's multivariate normal, NumPy's histogram2d and direct loops."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.neighbors import KernelDensity as SkKernelDensity

from gmlib.checkpoints import load_or_train
from gmlib.config import FAST_MAX_STEPS
from gmlib.data import sample_toy2d
from gmlib.models.density import (
    GaussianMixture,
    GaussianMixtureConfig,
    HistogramDensity,
    KernelDensity,
    class_posterior,
    e_step,
    gaussian_log_prob,
    kde_log_prob,
    m_step,
)


def random_mixture(k: int = 3, d: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weights = torch.softmax(torch.randn(k, generator=g, dtype=torch.float64), 0)
    means = 2.0 * torch.randn(k, d, generator=g, dtype=torch.float64)
    a = torch.randn(k, d, d, generator=g, dtype=torch.float64)
    covariances = a @ a.transpose(1, 2) + 0.3 * torch.eye(d, dtype=torch.float64)
    return weights, means, covariances


def toy(n: int = 400, seed: int = 0, name: str = "8gaussians") -> torch.Tensor:
    return sample_toy2d(name, n, generator=torch.Generator().manual_seed(seed)).double()


# ---------------------------------------------------------------------------------------------- the pieces
def test_gaussian_log_prob_matches_scipy():
    """Is gaussian_log_prob log N(x_n; mu_k, Sigma_k) for every pair, as SciPy computes it?"""
    _, means, covs = random_mixture(4, 3)
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = np.stack([multivariate_normal(means[k].numpy(), covs[k].numpy()).logpdf(x.numpy()) for k in range(4)], 1)
    np.testing.assert_allclose(gaussian_log_prob(x, means, covs).numpy(), ref, rtol=1e-10, atol=1e-10)


def test_class_posterior_is_bayes_rule_and_stable():
    """Does class_posterior give p(y|x) = p(x|y) p(y) / sum_c p(x|c) p(c), also for log-likelihoods near -1000?"""
    g = torch.Generator().manual_seed(0)
    log_lik = torch.randn(5, 3, generator=g, dtype=torch.float64)
    log_prior = torch.log(torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64))
    joint = log_lik.exp() * log_prior.exp()
    torch.testing.assert_close(class_posterior(log_lik, log_prior), joint / joint.sum(1, keepdim=True))
    far = class_posterior(log_lik - 1000.0, log_prior)
    torch.testing.assert_close(far, joint / joint.sum(1, keepdim=True))


def test_kde_log_prob_matches_sklearn_and_a_direct_average():
    """Is kde_log_prob the log of the average of N(x; x_n, h^2 I), as sklearn's KernelDensity and a loop say?"""
    data = toy(60)
    q = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for h in (0.1, 0.5, 2.0):
        ref = SkKernelDensity(kernel="gaussian", bandwidth=h).fit(data.numpy()).score_samples(q.numpy())
        np.testing.assert_allclose(kde_log_prob(q, data, h).numpy(), ref, rtol=1e-8, atol=1e-8)
    loop = [math.log(np.mean([multivariate_normal(p.numpy(), 0.3**2 * np.eye(2)).pdf(x.numpy()) for p in data]))
            for x in q]
    np.testing.assert_allclose(kde_log_prob(q, data, 0.3).numpy(), loop, rtol=1e-8)


def test_kde_log_prob_is_finite_far_from_the_data():
    """Does the KDE stay finite (log-sum-exp) where every kernel underflows in float64?"""
    data = toy(50)
    lp = kde_log_prob(torch.tensor([[40.0, 40.0]], dtype=torch.float64), data, 0.1)
    assert torch.isfinite(lp).all() and lp.item() < -1e4


def test_e_step_matches_a_loop_and_sklearn():
    """Are the responsibilities p(k|x_n) and log p(x_n) those of a direct loop and of sklearn's predict_proba?"""
    w, mu, cov = random_mixture(3, 2)
    x = toy(30)
    resp, log_px = e_step(x, w, mu, cov)
    dens = np.stack([w[k].item() * multivariate_normal(mu[k].numpy(), cov[k].numpy()).pdf(x.numpy()) for k in range(3)], 1)
    np.testing.assert_allclose(resp.numpy(), dens / dens.sum(1, keepdims=True), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(log_px.numpy(), np.log(dens.sum(1)), rtol=1e-10)
    sk = SkGaussianMixture(3, covariance_type="full")
    sk.weights_, sk.means_, sk.covariances_ = w.numpy(), mu.numpy(), cov.numpy()
    sk.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(cov.numpy()))
    np.testing.assert_allclose(resp.numpy(), sk.predict_proba(x.numpy()), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(log_px.numpy(), sk.score_samples(x.numpy()), rtol=1e-10)


def test_m_step_matches_weighted_formulas_and_per_class_fits():
    """Does m_step give the weighted MLE, and with one-hot responsibilities each class's mean and biased covariance?"""
    x = toy(50)
    resp = torch.softmax(torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)), 1)
    w, mu, cov = m_step(x, resp, reg_covar=0.0)
    xn, rn = x.numpy(), resp.numpy()
    for k in range(3):
        nk = rn[:, k].sum()
        mean = (rn[:, k, None] * xn).sum(0) / nk
        c = sum(rn[n, k] * np.outer(xn[n] - mean, xn[n] - mean) for n in range(50)) / nk
        np.testing.assert_allclose(w[k].item(), nk / 50, rtol=1e-12)
        np.testing.assert_allclose(mu[k].numpy(), mean, rtol=1e-10)
        np.testing.assert_allclose(cov[k].numpy(), c, rtol=1e-10, atol=1e-12)
    y = torch.arange(50) % 3
    w1, mu1, cov1 = m_step(x, torch.nn.functional.one_hot(y, 3).double(), reg_covar=1e-3)
    for k in range(3):
        xk = xn[y.numpy() == k]
        np.testing.assert_allclose(mu1[k].numpy(), xk.mean(0), rtol=1e-10)
        np.testing.assert_allclose(cov1[k].numpy(), np.cov(xk.T, bias=True) + 1e-3 * np.eye(2), rtol=1e-9)
    assert torch.isfinite(m_step(x, torch.nn.functional.one_hot(y * 0, 3).double())[1]).all()  # empty components


# ---------------------------------------------------------------------------------------------- the mixture
def test_em_follows_sklearn_step_for_step_and_never_lowers_the_likelihood():
    """From the same starting point, do our EM iterations give sklearn's parameters, with a rising log-likelihood?"""
    x = toy(300)
    gmm = GaussianMixture(GaussianMixtureConfig(num_components=6, dim=2, reg_covar=1e-6))
    gmm.initialize(x, generator=torch.Generator().manual_seed(0))
    w0, mu0, cov0 = gmm.weights.clone(), gmm.means.clone(), gmm.covariances.clone()
    history = gmm.fit_em(x, max_iter=15, tol=-math.inf, initialize=False)
    sk = SkGaussianMixture(6, covariance_type="full", reg_covar=1e-6, max_iter=15, tol=0.0, weights_init=w0.numpy(),
                           means_init=mu0.numpy(), precisions_init=np.linalg.inv(cov0.numpy()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge"
        sk.fit(x.numpy())
    np.testing.assert_allclose(gmm.means.numpy(), sk.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gmm.covariances.numpy(), sk.covariances_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(gmm.weights.numpy(), sk.weights_, rtol=1e-8)
    np.testing.assert_allclose(gmm.log_prob(x).numpy(), sk.score_samples(x.numpy()), rtol=1e-9)
    ll = history.steps["log_likelihood"]
    assert len(ll) == 16 and all(b >= a - 1e-12 for a, b in zip(ll, ll[1:], strict=False))
    assert ll[-1] == pytest.approx(float(gmm.log_prob(x).mean()))


def test_em_stops_at_tol_and_fast_mode_caps_iterations(monkeypatch):
    """Does EM stop once the gain is below tol, and after FAST_MAX_STEPS iterations in FAST mode?"""
    x = toy(200)
    gmm = GaussianMixture(GaussianMixtureConfig(num_components=8, dim=2, tol=1e-3, max_iter=500))
    h = gmm.fit_em(x, generator=torch.Generator().manual_seed(0))
    ll = h.steps["log_likelihood"]
    assert ll[-1] - ll[-2] < 1e-3 and len(ll) < 500
    monkeypatch.setenv("GMLIB_FAST", "1")
    h_fast = GaussianMixture(GaussianMixtureConfig(8, 2, tol=-1.0)).fit_em(x, generator=torch.Generator().manual_seed(0))
    assert h_fast.num_steps == FAST_MAX_STEPS + 1


def test_injected_steps_are_used_and_keyed():
    """Does the mixture call the e_step_fn and m_step_fn it is given, and do they change its cache key?"""
    calls = {"e": 0, "m": 0}

    def my_e(*args):
        calls["e"] += 1
        return e_step(*args)

    def my_m(*args):
        calls["m"] += 1
        return m_step(*args)

    gmm = GaussianMixture(GaussianMixtureConfig(3, 2), e_step_fn=my_e, m_step_fn=my_m)
    gmm.fit_em(toy(100), max_iter=4, tol=-1.0, generator=torch.Generator().manual_seed(0))
    assert calls == {"e": 4, "m": 4}
    assert gmm.cache_key() != GaussianMixture(GaussianMixtureConfig(3, 2)).cache_key()


def test_sampling_is_reproducible_and_has_the_mixture_moments():
    """Are samples identical for equal seeds, and do their mean and covariance match the mixture's?"""
    w, mu, cov = random_mixture(3, 2, seed=4)
    gmm = GaussianMixture(GaussianMixtureConfig(3, 2))
    gmm.weights.copy_(w), gmm.means.copy_(mu), gmm.covariances.copy_(cov)
    a = gmm.sample(40_000, generator=torch.Generator().manual_seed(1))
    b = gmm.sample(40_000, generator=torch.Generator().manual_seed(1))
    assert a.shape == (40_000, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    mean = (w[:, None] * mu).sum(0)
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    torch.testing.assert_close(a.double().mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(a.double().T), second - mean[:, None] * mean[None], atol=0.1, rtol=0.03)
    _, k = gmm.sample(10, generator=torch.Generator().manual_seed(1), return_components=True)
    assert k.shape == (10,) and k.dtype == torch.long


def test_mixture_round_trips_through_load_or_train():
    """Does load_or_train cache a fitted mixture (buffers) and restore the same log-likelihoods?"""
    x = toy(150)
    config = GaussianMixtureConfig(4, 2)
    fitted, history = load_or_train("gmm-test", GaussianMixture(config),
                                    lambda m: m.fit_em(x, generator=torch.Generator().manual_seed(0)), config=config)
    loaded, history2 = load_or_train("gmm-test", GaussianMixture(config), lambda m: pytest.fail("retrained"),
                                     config=config)
    torch.testing.assert_close(loaded.log_prob(x), fitted.log_prob(x))
    assert history2.steps == history.steps
    assert loaded.num_parameters() == 3 + 8 + 12


# ---------------------------------------------------------------------------------------------- histogram and KDE
def test_histogram_matches_numpy_and_integrates_to_one():
    """Is the histogram density NumPy's histogram2d(density=True), with total probability 1 over the box?"""
    x = toy(500, name="moons")
    hist = HistogramDensity(10, -4.0, 4.0).fit(x)
    ref, edges, _ = np.histogram2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=10, range=[[-4, 4], [-4, 4]], density=True)
    centres = torch.tensor((edges[:-1] + edges[1:]) / 2)
    grid = torch.cartesian_prod(centres, centres)  # (100, 2), first coordinate slowest, like ref's rows
    np.testing.assert_allclose(hist.log_prob(grid).exp().numpy(), ref.flatten(), rtol=1e-12)
    assert hist.log_prob(grid).exp().sum().item() * hist.bin_volume == pytest.approx(1.0)
    assert hist.log_prob(torch.tensor([[5.0, 0.0]], dtype=torch.float64)).item() == -math.inf


def test_histogram_pseudo_count_and_sampling():
    """Does alpha give empty bins (alpha / (N + alpha B)) / volume, and do samples fall in bins by their probability?"""
    x = torch.tensor([[-3.5, -3.5], [-3.5, -3.4], [3.5, 3.5]], dtype=torch.float64)
    hist = HistogramDensity(2, -4.0, 4.0, alpha=0.5).fit(x)
    p = hist.log_prob(torch.tensor([[-2.0, 2.0], [-2.0, -2.0]], dtype=torch.float64)).exp()
    torch.testing.assert_close(p, torch.tensor([0.5 / 5, 2.5 / 5], dtype=torch.float64) / 16)
    s = hist.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert ((s >= -4) & (s <= 4)).all()
    lower_left = ((s[:, 0] < 0) & (s[:, 1] < 0)).double().mean().item()
    assert lower_left == pytest.approx(0.5, abs=0.02)
    torch.testing.assert_close(s, hist.sample(20_000, generator=torch.Generator().manual_seed(0)))


def test_kernel_density_model_uses_kde_fn_and_samples_with_the_bandwidth():
    """Does KernelDensity evaluate through kde_fn (chunked) and sample points with variance data + h^2?"""
    data = toy(80)
    seen = []

    def my_kde(q, d, h):
        seen.append(len(q))
        return kde_log_prob(q, d, h)

    q = torch.randn(10, 2, dtype=torch.float64)
    kde = KernelDensity(0.4, kde_fn=my_kde, chunk_size=4).fit(data)
    torch.testing.assert_close(kde.log_prob(q), kde_log_prob(q, data, 0.4))
    assert seen == [4, 4, 2]
    one = KernelDensity(0.5).fit(torch.zeros(1, 2, dtype=torch.float64))
    s = one.sample(20_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.var(0), torch.full((2,), 0.25, dtype=torch.float64), atol=0.01, rtol=0)
    torch.testing.assert_close(s, one.sample(20_000, generator=torch.Generator().manual_seed(0)))
