"""Latent diffusion (Rombach et al., 2022): a diffusion model over the codes of a trained, frozen autoencoder.

Notation as in course lesson 10:
    x (B, C, H, W) images in [0, 1];  z = E(x) (B, d) the autoencoder's code;  x_hat = G(z) its decoder mean
    u = (z - shift) / scale            the diffusion variable: codes standardised per dimension with the
                                       training codes' mean (shift, (d,)) and standard deviation (scale, (d,))
    training   the DDPM loss (L_simple) on u = to_latent(E(x)); the autoencoder is not trained further
    sampling   u ~ DDPM, then x = G(from_latent(u)) with from_latent(u) = u * scale + shift
The diffusion model only has to learn the distribution of d numbers per image instead of C * H * W pixels; the
autoencoder's reconstructions bound the quality (a sample can be no sharper than G can draw).

The standardisation pieces are small pure functions (`to_diffusion_space`, `from_diffusion_space`), and the
model takes a student's own: `LatentDiffusion(ae, config, shift, scale, to_latent_fn=..., from_latent_fn=...)`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..checkpoints import function_key
from ..train import split_batch
from .ddpm import DDPM, DDPMConfig

__all__ = ["LatentDiffusion", "to_diffusion_space", "from_diffusion_space", "latent_statistics"]


def to_diffusion_space(z: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """(z - shift) / scale: codes (B, d) with per-dimension shift, scale (d,) -> (B, d)."""
    return (z - shift) / scale


def from_diffusion_space(u: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """u * scale + shift, the inverse of `to_diffusion_space`: (B, d) -> (B, d)."""
    return u * scale + shift


def latent_statistics(z: Tensor) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and standard deviation of codes (N, d) -> (d,), (d,) (a floor of 1e-6 on the std)."""
    return z.mean(0), z.std(0).clamp_min(1e-6)


class LatentDiffusion(nn.Module):
    """A DDPM (kind "2d", an MLP denoiser) over the standardised codes of a frozen autoencoder.

    autoencoder: a module with `encode(x)` (returning z, or a tuple whose first item is z, like a VAE's
    (mu, logvar)) and `decode_mean(z)` -> images in [0, 1]. Its weights are frozen here. `loss(batch)`: batch
    = x or (x, y), labels ignored. `sample(n, **kwargs)`: kwargs go to `DDPM.sample` (sampler, num_steps, ...).
    """

    def __init__(
        self,
        autoencoder: nn.Module,
        config: DDPMConfig,
        shift: Tensor,
        scale: Tensor,
        *,
        to_latent_fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
        from_latent_fn: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
    ):
        super().__init__()
        if config.kind != "2d":
            raise ValueError("latent diffusion runs a DDPM of kind '2d' over the code vectors")
        shift, scale = torch.as_tensor(shift, dtype=torch.float32), torch.as_tensor(scale, dtype=torch.float32)
        if shift.shape != (config.data_dim,) or scale.shape != (config.data_dim,):
            raise ValueError(f"shift and scale must have shape (data_dim,) = ({config.data_dim},), got "
                             f"{tuple(shift.shape)} and {tuple(scale.shape)}")
        self.autoencoder = autoencoder.requires_grad_(False)
        self.ddpm = DDPM(config)
        self.config = config
        self.register_buffer("shift", shift.clone())
        self.register_buffer("scale", scale.clone())
        self.to_latent_fn, self.from_latent_fn = to_latent_fn, from_latent_fn

    def cache_key(self) -> dict:
        """The injected functions' code (the autoencoder's weights belong in load_or_train's data_key)."""
        return {"to_latent_fn": function_key(self.to_latent_fn), "from_latent_fn": function_key(self.from_latent_fn)}

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> the diffusion variable u (B, d)."""
        self.autoencoder.eval()
        z = self.autoencoder.encode(x)
        z = z[0] if isinstance(z, tuple) else z
        return (self.to_latent_fn or to_diffusion_space)(z, self.shift, self.scale)

    @torch.no_grad()
    def decode(self, u: Tensor) -> Tensor:
        """The diffusion variable u (B, d) -> images (B, C, H, W) in [0, 1]."""
        self.autoencoder.eval()
        return self.autoencoder.decode_mean((self.from_latent_fn or from_diffusion_space)(u, self.shift, self.scale))

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        x, _ = split_batch(batch)
        return self.ddpm.loss(self.encode(x))

    @torch.no_grad()
    def sample(self, n: int, **kwargs) -> Tensor:
        """n images (n, C, H, W) in [0, 1]: codes from the DDPM, decoded."""
        return self.decode(self.ddpm.sample(n, **kwargs))
