"""The VAE's pieces against independent references, and the model contract."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from gmlib.models.vae import (
    VAE,
    VAEConfig,
    bernoulli_log_likelihood,
    gaussian_kl,
    gaussian_log_likelihood,
    interpolate,
    negative_elbo,
    reparameterize,
)


def test_gaussian_kl_matches_torch_distributions():
    """Does the closed-form KL equal torch.distributions' KL, summed over latent dimensions?"""
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar), ref)


def test_gaussian_kl_is_zero_only_at_the_prior():
    """Is the KL zero for q = N(0, I) and positive elsewhere?"""
    assert gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)).abs().max() < 1e-7
    assert (gaussian_kl(torch.randn(10, 4), torch.randn(10, 4)) > 0).all()


def test_reparameterize_has_the_right_distribution():
    """Are samples distributed as N(mu, exp(logvar)) (mean and standard deviation per dimension)?"""
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([[1.0, -2.0, 0.0]]).expand(200_000, 3)
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.01)]]).expand(200_000, 3)
    z = reparameterize(mu, logvar, generator=g)
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0, 0.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([1.0, 2.0, 0.1]), atol=0.01, rtol=0.01)


def test_reparameterize_gradient_matches_the_pathwise_derivative():
    """Is dz/dmu = 1 and dz/dlogvar = (z - mu) / 2, as the reparameterisation z = mu + exp(logvar/2) eps implies?"""
    mu = torch.randn(6, 4, requires_grad=True)
    logvar = torch.randn(6, 4, requires_grad=True)
    z = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(1))
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * (z - mu).detach())


def test_reparameterize_generator_is_reproducible():
    """Does the same generator seed give the same z?"""
    mu, logvar = torch.zeros(3, 2), torch.zeros(3, 2)
    a = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(5))
    b = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_bernoulli_log_likelihood_matches_torch_distributions():
    """Does the per-example Bernoulli log-likelihood equal Bernoulli(logits).log_prob summed over pixels?"""
    logits = torch.randn(4, 1, 8, 8) * 3
    x = (torch.rand(4, 1, 8, 8) > 0.5).float()
    ref = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), ref)


def test_gaussian_log_likelihood_matches_torch_distributions():
    """Does the Gaussian log-likelihood equal Normal(mean, sigma).log_prob summed over pixels?"""
    mean, x = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    ref = Normal(mean, math.exp(-1.5)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_likelihood(mean, x, -1.5), ref)


def test_negative_elbo_equals_a_monte_carlo_estimate_by_hand():
    """Is the negative ELBO -log p(x|z) + beta * KL, with both terms computed by torch.distributions?"""
    x = (torch.rand(5, 1, 8, 8) > 0.5).float()
    logits, mu, logvar = torch.randn(5, 1, 8, 8), torch.randn(5, 3), torch.randn(5, 3)
    rec = Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(negative_elbo(x, logits, mu, logvar, beta=0.3), -rec + 0.3 * kl)


def test_interpolate_includes_both_ends_and_is_evenly_spaced():
    """Does interpolate return num_steps points from z0 to z1 inclusive, evenly spaced?"""
    z0, z1 = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    path = interpolate(z0, z1, 5)
    assert path.shape == (5, 2)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(path[:, 0], torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="at least 2"):
        interpolate(z0, z1, 1)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_vae_contract(likelihood, num_classes):
    """Finite scalar loss, sample shapes, reproducible samples with generator=, gradients reach every parameter."""
    cfg = VAEConfig(image_shape=(1, 8, 8), latent_dim=3, hidden=(16,), likelihood=likelihood, num_classes=num_classes)
    model = VAE(cfg)
    x = torch.rand(6, 1, 8, 8)
    y = torch.randint(0, 10, (6,))
    loss, logs = model.loss((x, y))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(logs) == {"rec", "kl"}
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    kwargs = {"y": y} if num_classes else {}
    s1 = model.sample(6, generator=torch.Generator().manual_seed(0), **kwargs)
    s2 = model.sample(6, generator=torch.Generator().manual_seed(0), **kwargs)
    assert s1.shape == (6, 1, 8, 8) and 0 <= s1.min() and s1.max() <= 1
    torch.testing.assert_close(s1, s2)


def test_conditional_vae_requires_labels():
    """Does a conditional VAE say that it needs labels instead of failing with a shape error?"""
    model = VAE(VAEConfig(latent_dim=2, hidden=(8,), num_classes=10))
    with pytest.raises(ValueError, match="pass the labels"):
        model.loss(torch.rand(2, 1, 8, 8))


def test_injected_functions_are_used_and_change_the_cache_key():
    """Does the VAE train with an injected loss, and does a different function give a different cache key?"""
    calls = []

    def my_elbo(x, logits, mu, logvar, beta):
        calls.append(beta)
        return negative_elbo(x, logits, mu, logvar, beta)

    cfg = VAEConfig(latent_dim=2, hidden=(8,), beta=0.5)
    model = VAE(cfg, negative_elbo_fn=my_elbo)
    model.loss(torch.rand(3, 1, 8, 8))
    assert calls == [0.5]
    assert model.cache_key() != VAE(cfg).cache_key()
    assert model.cache_key() == VAE(cfg, negative_elbo_fn=my_elbo).cache_key()


def test_vae_learns_digits():
    """Does a short training run lower the negative ELBO on held-out digits well below its starting value?"""
    from gmlib.data import load_digits
    from gmlib.train import fit

    torch.manual_seed(0)
    train, test = load_digits("train"), load_digits("test")
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    model = VAE(VAEConfig(latent_dim=4, hidden=(128,)))
    x_test = test.tensors[0]
    with torch.no_grad():
        before = model.negative_elbo(x_test, generator=torch.Generator().manual_seed(0))[0].mean().item()
    fit(model, loader, epochs=8, lr=2e-3, device="cpu", progress=False)
    with torch.no_grad():
        after = model.negative_elbo(x_test, generator=torch.Generator().manual_seed(0))[0].mean().item()
    # 64 pixels: an untrained decoder costs about 64*log(2) = 44 nats; a trained one well under 30
    assert before > 40 and after < 30, (before, after)


@pytest.mark.slow
def test_vae_overfits_one_batch():
    """Trained on one fixed batch of 16 binarized digits, does the VAE reconstruct them almost exactly?

    A small beta lets the code carry the whole image (the KL no longer pulls it to the prior); a bug in the
    encoder, the reparameterisation or the decoder shows up as reconstructions that stay blurred."""
    from gmlib.data import load_digits

    torch.manual_seed(0)
    x = load_digits("train", "binarized").tensors[0][:16]  # (16, 1, 8, 8) in {0, 1}
    model = VAE(VAEConfig(latent_dim=8, hidden=(128,), beta=0.01))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(600):
        opt.zero_grad()
        loss, _ = model.loss(x)
        loss.backward()
        opt.step()
    with torch.no_grad():
        mu, _ = model.encode(x)
        recon = model.decode_mean(mu)  # (16, 1, 8, 8) probabilities
    wrong = ((recon > 0.5).float() != x).float().mean().item()
    assert wrong < 0.01, f"{wrong:.1%} of the pixels are reconstructed wrongly"
