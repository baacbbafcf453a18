"""Latent diffusion: the standardisation round trip, training through a frozen autoencoder, sampling, injection."""

from __future__ import annotations

import pytest
import torch

from gmlib.models.ae import AEConfig, Autoencoder
from gmlib.models.ddpm import DDPMConfig
from gmlib.models.latent_diffusion import LatentDiffusion, from_diffusion_space, latent_statistics, to_diffusion_space
from gmlib.models.vae import VAE, VAEConfig
from gmlib.train import fit


def test_standardisation_round_trip_and_statistics():
    """Does to_diffusion_space give zero-mean unit-std codes with latent_statistics, and is from_ its inverse?"""
    z = torch.randn(500, 3) * torch.tensor([0.1, 2.0, 5.0]) + torch.tensor([1.0, -3.0, 0.0])
    shift, scale = latent_statistics(z)
    u = to_diffusion_space(z, shift, scale)
    torch.testing.assert_close(u.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(u.std(0), torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(from_diffusion_space(u, shift, scale), z, atol=1e-5, rtol=1e-5)


def _model(ae, **kw):
    return LatentDiffusion(ae, DDPMConfig(kind="2d", data_dim=4, T=50, widths=(16, 16)), torch.zeros(4), torch.ones(4), **kw)


def test_training_leaves_the_autoencoder_alone_and_sampling_decodes():
    """Do a few fit steps change the DDPM but not the frozen autoencoder, and are samples images in [0, 1]?"""
    torch.manual_seed(0)
    ae = Autoencoder(AEConfig(latent_dim=4, hidden=(16,)))
    before = {k: v.clone() for k, v in ae.state_dict().items()}
    model = _model(ae)
    ddpm_before = [p.detach().clone() for p in model.ddpm.parameters()]
    fit(model, [torch.rand(8, 1, 8, 8)] * 5, epochs=1, device="cpu", progress=False)
    assert all(torch.equal(v, ae.state_dict()[k]) for k, v in before.items())
    assert any(not torch.equal(a, b) for a, b in zip(ddpm_before, model.ddpm.parameters(), strict=True))
    x = model.sample(3, num_steps=5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 8, 8) and x.min() >= 0 and x.max() <= 1


def test_encode_uses_the_vae_mean_and_the_injected_functions():
    """With a VAE, is the code its mean mu; are injected to/from functions used and part of the cache key?"""
    torch.manual_seed(0)
    vae = VAE(VAEConfig(latent_dim=4, hidden=(16,)))
    calls = []

    def mine(z, shift, scale):
        calls.append("to")
        return 2 * z

    model = _model(vae, to_latent_fn=mine)
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(model.encode(x), 2 * vae.encode(x)[0])
    assert calls and model.cache_key() != _model(vae).cache_key()


def test_bad_configs_are_named():
    """Are a non-2d DDPM and wrongly shaped shift/scale rejected?"""
    ae = Autoencoder(AEConfig(latent_dim=4, hidden=(16,)))
    with pytest.raises(ValueError, match="2d"):
        LatentDiffusion(ae, DDPMConfig(kind="image"), torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="shift"):
        LatentDiffusion(ae, DDPMConfig(kind="2d", data_dim=4), torch.zeros(3), torch.ones(4))
