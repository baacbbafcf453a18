"""Variational autoencoder (Kingma and Welling, 2014), with beta (Higgins et al., 2017) and a conditional
option (Sohn et al., 2015).

Notation as in course lesson 02:
    x (B, C, H, W) data, y (B,) class labels (conditional model), z (B, d) latent
    q(z|x) = N(mu, diag(exp(logvar)))            encoder
    p(x|z) = Bernoulli(sigmoid(logits))          or N(mean, sigma^2 I) with a learned scalar sigma
    p(z)   = N(0, I)
    negative ELBO(x) = -E_q[log p(x|z)] + beta * KL(q(z|x) || p(z))      (one-sample estimate of the first term)

The pieces a lesson teaches are small pure functions (`reparameterize`, `gaussian_kl`,
`bernoulli_log_likelihood`, `negative_elbo`, `interpolate`); `VAE` takes replacements for them, so a student
trains a real model with their own code: `VAE(config, reparameterize_fn=mine, negative_elbo_fn=mine)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import function_key
from ..nn import MLP, randn_like_with
from ..train import split_batch

__all__ = [
    "VAEConfig",
    "VAE",
    "reparameterize",
    "gaussian_kl",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "negative_elbo",
    "interpolate",
]


# ---------------------------------------------------------------------------------------------- the pieces
def reparameterize(mu: Tensor, logvar: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2), eps ~ N(0, I): (B, d), (B, d) -> (B, d).

    The noise is drawn outside the computation graph, so z is a differentiable function of mu and logvar.
    """
    eps = randn_like_with(mu, generator)  # (B, d)
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) summed over latent dims: (B, d), (B, d) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x|z) for independent Bernoulli pixels with probabilities sigmoid(logits), summed per example:
    (B, ...), (B, ...) -> (B,). Works for x in [0, 1] (the continuous relaxation used for grey levels)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


def gaussian_log_likelihood(mean: Tensor, x: Tensor, log_std: Tensor | float) -> Tensor:
    """log N(x; mean, sigma^2 I) with sigma = exp(log_std), summed per example: (B, ...) -> (B,)."""
    log_std = torch.as_tensor(log_std, dtype=mean.dtype, device=mean.device)
    per_dim = -0.5 * ((x - mean) / log_std.exp()).pow(2) - log_std - 0.5 * math.log(2 * math.pi)
    return per_dim.flatten(1).sum(dim=1)


def negative_elbo(x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0) -> Tensor:
    """Per-example negative ELBO with a Bernoulli decoder: -log p(x|z) + beta * KL(q(z|x) || N(0, I)).

    x, logits (B, C, H, W); mu, logvar (B, d) -> (B,), in nats.
    """
    return -bernoulli_log_likelihood(logits, x) + beta * gaussian_kl(mu, logvar)


def interpolate(z0: Tensor, z1: Tensor, num_steps: int) -> Tensor:
    """Evenly spaced points on the segment from z0 to z1, both ends included: (d,), (d,) -> (num_steps, d)."""
    if num_steps < 2:
        raise ValueError(f"num_steps must be at least 2 (both end points), got {num_steps}")
    t = torch.linspace(0.0, 1.0, num_steps, dtype=z0.dtype, device=z0.device)[:, None]  # (S, 1)
    return (1 - t) * z0[None] + t * z1[None]


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class VAEConfig:
    image_shape: tuple[int, int, int] = (1, 8, 8)
    latent_dim: int = 8
    hidden: tuple[int, ...] = (256, 128)
    beta: float = 1.0  # weight on the KL term (beta-VAE)
    likelihood: str = "bernoulli"  # or "gaussian" (learned scalar sigma)
    num_classes: int = 0  # > 0: conditional VAE, encoder and decoder see one_hot(y)


class VAE(nn.Module):
    """MLP encoder and decoder. `loss(batch)` is the mean negative ELBO; batch = x or (x, y)."""

    def __init__(
        self,
        config: VAEConfig,
        *,
        reparameterize_fn: Callable[..., Tensor] | None = None,
        kl_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        negative_elbo_fn: Callable[..., Tensor] | None = None,
    ):
        super().__init__()
        if config.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {config.likelihood!r}")
        if negative_elbo_fn is not None and config.likelihood != "bernoulli":
            raise ValueError("negative_elbo_fn assumes a Bernoulli decoder; use likelihood='bernoulli'")
        self.config = config
        self.reparameterize_fn = reparameterize_fn
        self.kl_fn = kl_fn
        self.negative_elbo_fn = negative_elbo_fn
        data_dim = math.prod(config.image_shape)
        c = config.num_classes
        self.encoder = MLP(data_dim + c, config.hidden, 2 * config.latent_dim)
        self.decoder = MLP(config.latent_dim + c, tuple(reversed(config.hidden)), data_dim)
        self.log_std = nn.Parameter(torch.tensor(-1.0)) if config.likelihood == "gaussian" else None

    # -- helpers
    def _with_label(self, h: Tensor, y: Tensor | None) -> Tensor:
        if self.config.num_classes == 0:
            return h
        if y is None:
            raise ValueError("this VAE is conditional (num_classes > 0): pass the labels y")
        return torch.cat([h, F.one_hot(y.long(), self.config.num_classes).to(h.dtype)], dim=1)

    _split = staticmethod(split_batch)

    def cache_key(self) -> dict:
        """What besides the config determines the trained weights: the injected functions' code."""
        return {name: function_key(getattr(self, name))
                for name in ("reparameterize_fn", "kl_fn", "negative_elbo_fn")}

    # -- the model
    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, C, H, W) -> mu, logvar (B, d)."""
        h = self.encoder(self._with_label(x.flatten(1), y))  # (B, 2d)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """z (B, d) -> decoder output (B, C, H, W): logits (Bernoulli) or the mean (Gaussian)."""
        return self.decoder(self._with_label(z, y)).view(-1, *self.config.image_shape)

    def decode_mean(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """z (B, d) -> the decoder's mean image (B, C, H, W) in [0, 1]."""
        out = self.decode(z, y)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out.clamp(0.0, 1.0)

    def log_likelihood(self, x: Tensor, out: Tensor) -> Tensor:
        """log p(x|z) given the decoder output: (B, C, H, W) -> (B,)."""
        if self.config.likelihood == "bernoulli":
            return bernoulli_log_likelihood(out, x)
        return gaussian_log_likelihood(out, x, self.log_std.clamp(-6.0, 2.0))

    def negative_elbo(self, x: Tensor, y: Tensor | None = None, *, generator=None) -> tuple[Tensor, dict]:
        """Per-example negative ELBO (B,) and the mean reconstruction and KL terms for logging."""
        mu, logvar = self.encode(x, y)
        if self.reparameterize_fn is not None:
            z = self.reparameterize_fn(mu, logvar)
        else:
            z = reparameterize(mu, logvar, generator=generator)
        out = self.decode(z, y)
        rec = self.log_likelihood(x, out)  # (B,)
        kl = (self.kl_fn or gaussian_kl)(mu, logvar)  # (B,)
        if self.negative_elbo_fn is not None:
            per_example = self.negative_elbo_fn(x, out, mu, logvar, self.config.beta)
        else:
            per_example = -rec + self.config.beta * kl
        return per_example, {"rec": -rec.mean().item(), "kl": kl.mean().item()}

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        x, y = self._split(batch)
        per_example, logs = self.negative_elbo(x, y)
        return per_example.mean(), logs

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Decoder mean at the encoder mean: (B, C, H, W) -> (B, C, H, W) in [0, 1]."""
        mu, _ = self.encode(x, y)
        return self.decode_mean(mu, y)

    @torch.no_grad()
    def sample(self, n: int, *, y: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n decoder-mean images (n, C, H, W) from z ~ N(0, I); a conditional model needs labels y (n,)."""
        ref = next(self.parameters())
        z = randn_like_with(ref.new_empty(n, self.config.latent_dim), generator)
        if y is not None:
            y = y.to(ref.device)
        return self.decode_mean(z, y)
