"""Autoencoders (Hinton and Salakhutdinov, 2006) and denoising autoencoders (Vincent et al., 2008).

Notation as in course lesson 01:
    x (B, C, H, W) clean data in [0, 1], z = f(x) (B, d) code, x_hat = g(z) = sigmoid(decoder logits) in [0, 1]
    plain AE:      L = mean_b err(g(f(x_b)), x_b)
    denoising AE:  x_tilde ~ q(x_tilde | x)  (corruption),  L = mean_b err(g(f(x_tilde_b)), x_b)
                   the CORRUPTED input goes in, the CLEAN image is the target.
    err(x_hat, x) = mean over pixels of (x_hat - x)^2                                     ("mse")
                  or mean over pixels of -[x log x_hat + (1 - x) log(1 - x_hat)]          ("bce")
                  (reduction="sum" sums over pixels instead: for "mse" the squared distance ||x_hat - x||^2)
Corruptions q(x_tilde | x): "gaussian" x_tilde = x + sigma * eps, eps ~ N(0, I) (not clipped, so the noise
stays exactly additive); "masking" sets each pixel to 0 independently with probability p (Vincent et al.'s
masking noise). `noise_std` is sigma for "gaussian" and the drop probability p for "masking"; 0 is a plain AE.

Anomaly detection: `reconstruction_error(x)` (B,) is err(g(f(x)), x) on the clean input; an AE trained on
normal data reconstructs normal inputs better than unusual ones, so the error is an anomaly score.
`threshold_at_fpr(scores_normal, fpr)` picks the decision threshold (flag x when score > t) that keeps the
false-positive rate on normal data at most fpr; AUROC is `gmlib.metrics.auroc`. `encode_dataset` maps a data
set to its codes in batches, without gradients.

Sampling (a weak baseline): an AE defines no distribution over z, so it has no sampler of its own. `sample`
decodes z = mu + sigma * eps, eps ~ N(0, I), with mu and sigma the per-dimension mean and standard deviation
of the training codes, set by `fit_latent_gaussian(data)` after training (until then mu = 0, sigma = 1). The
codes of a plain AE fill an irregular region, which a diagonal Gaussian covers badly: samples are often
blurry or not digits at all. That failure is the motivation for the VAE (lesson 02).

The pieces a lesson teaches are small pure functions (`corrupt`, `reconstruction_error`, `denoising_loss`);
`Autoencoder` takes replacements: `Autoencoder(config, corrupt_fn=mine, reconstruction_error_fn=mine,
loss_fn=mine)`, where loss_fn(reconstruct, x, noise_std, kind, generator=None) -> scalar replaces the whole
training loss (`denoising_loss` is the reference).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import function_key
from ..nn import MLP, randn_like_with
from ..nn.conv import ConvDecoder, ConvEncoder

__all__ = ["AEConfig", "Autoencoder", "corrupt", "denoising_loss", "encode_dataset", "reconstruction_error",
           "threshold_at_fpr"]

NOISE_KINDS = ("gaussian", "masking")
RECONSTRUCTION_KINDS = ("mse", "bce")
REDUCTIONS = ("mean", "sum")


# ---------------------------------------------------------------------------------------------- the pieces
def _rand_like_with(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) noise shaped like x, drawn on the generator's device then moved (as `randn_like_with`)."""
    if generator is None:
        return torch.rand_like(x)
    return torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def corrupt(x: Tensor, noise_std: float, kind: str = "gaussian", generator: torch.Generator | None = None) -> Tensor:
    """A corrupted copy x_tilde of x (any shape): "gaussian" adds noise_std * N(0, 1) to every entry,
    "masking" zeroes each entry with probability noise_std. noise_std = 0 returns x itself."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    if noise_std == 0:
        return x
    if kind == "gaussian":
        return x + noise_std * randn_like_with(x, generator)
    if not 0 <= noise_std <= 1:
        raise ValueError(f"masking noise needs a drop probability in [0, 1], got {noise_std}")
    keep = _rand_like_with(x, generator) >= noise_std  # (B, ...) True with probability 1 - p
    return x * keep.to(x.dtype)


def reconstruction_error(x_hat: Tensor, x: Tensor, kind: str = "mse", reduction: str = "mean") -> Tensor:
    """Per-example reconstruction error, the mean (or, with reduction="sum", the sum) over all non-batch
    entries: (B, ...), (B, ...) -> (B,).

    x_hat in [0, 1] is the reconstruction, x the target. "mse": (x_hat - x)^2; "bce": binary cross entropy
    -[x log x_hat + (1 - x) log(1 - x_hat)] (x may be grey levels in [0, 1]; logs are clamped at -100, as
    `F.binary_cross_entropy` does). kind="mse" with reduction="sum" is the squared distance ||x_hat - x||^2.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if kind == "mse":
        per_entry = (x_hat - x).pow(2)
    elif kind == "bce":
        per_entry = F.binary_cross_entropy(x_hat, x, reduction="none")
    else:
        raise ValueError(f"reconstruction kind must be one of {RECONSTRUCTION_KINDS}, got {kind!r}")
    per_entry = per_entry.flatten(1)  # (B, D)
    return per_entry.sum(dim=1) if reduction == "sum" else per_entry.mean(dim=1)


def denoising_loss(
    reconstruct: Callable[[Tensor], Tensor],
    x: Tensor,
    noise_std: float,
    kind: str = "gaussian",
    generator: torch.Generator | None = None,
    *,
    reconstruction: str = "mse",
    reduction: str = "mean",
) -> Tensor:
    """The (denoising) autoencoder loss, a scalar: the batch mean of err(reconstruct(x_tilde), x) with
    x_tilde = corrupt(x, noise_std, kind, generator). The CLEAN x is the target; noise_std = 0 gives the plain
    autoencoder loss. `reconstruct` maps (B, ...) -> (B, ...) (a model's forward, g(f(.)))."""
    x_tilde = corrupt(x, noise_std, kind, generator=generator)  # (B, ...)
    return reconstruction_error(reconstruct(x_tilde), x, reconstruction, reduction).mean()


@torch.no_grad()
def encode_dataset(encode: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 256) -> Tensor:
    """Codes of a whole data set, computed in consecutive batches without gradients: encode maps (b, ...) ->
    (b, d); x (N, ...) -> (N, d), rows in the order of x."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return torch.cat([encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def threshold_at_fpr(scores_normal: Tensor, fpr: float) -> float:
    """The decision threshold t for "anomalous when score > t" with a false-positive rate of at most `fpr` on
    the given normal scores (n,): the smallest normal score with at most floor(fpr * n) normal scores above
    it, i.e. the (floor(fpr * n) + 1)-th largest normal score."""
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must lie in [0, 1], got {fpr}")
    s = torch.as_tensor(scores_normal).detach().flatten()
    if len(s) == 0:
        raise ValueError("threshold_at_fpr needs at least one normal score")
    allowed = min(math.floor(fpr * len(s)), len(s) - 1)  # normal scores allowed above t
    return float(torch.sort(s).values[len(s) - 1 - allowed])


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class AEConfig:
    image_shape: tuple[int, int, int] = (1, 8, 8)
    latent_dim: int = 8
    arch: str = "mlp"  # "mlp" (hidden = layer widths) or "conv" (hidden = channels of the stride-2 stages)
    hidden: tuple[int, ...] = (256, 128)
    noise_std: float = 0.0  # corruption strength for a denoising AE (0 = plain AE); see `corrupt`
    noise: str = "gaussian"  # "gaussian" or "masking"
    reconstruction: str = "mse"  # "mse" or "bce"; see `reconstruction_error`
    reduction: str = "mean"  # "mean" or "sum" over pixels; see `reconstruction_error`


class Autoencoder(nn.Module):
    """A deterministic encoder f and decoder g. `loss(batch)` is the mean reconstruction error of the clean
    x from the (corrupted, for a denoising AE) input; batch = x or (x, y), labels ignored."""

    def __init__(
        self,
        config: AEConfig,
        *,
        corrupt_fn: Callable[..., Tensor] | None = None,
        reconstruction_error_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        loss_fn: Callable[..., Tensor] | None = None,
    ):
        super().__init__()
        if config.arch not in ("mlp", "conv"):
            raise ValueError(f"arch must be 'mlp' or 'conv', got {config.arch!r}")
        if config.noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {NOISE_KINDS}, got {config.noise!r}")
        if config.reconstruction not in RECONSTRUCTION_KINDS:
            raise ValueError(f"reconstruction must be one of {RECONSTRUCTION_KINDS}, got {config.reconstruction!r}")
        if config.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {config.reduction!r}")
        self.config = config
        self.corrupt_fn = corrupt_fn
        self.reconstruction_error_fn = reconstruction_error_fn
        self.loss_fn = loss_fn
        hidden = tuple(config.hidden)
        if config.arch == "mlp":
            data_dim = math.prod(config.image_shape)
            self.encoder = nn.Sequential(nn.Flatten(), MLP(data_dim, hidden, config.latent_dim))
            self.decoder = nn.Sequential(MLP(config.latent_dim, hidden[::-1], data_dim),
                                         nn.Unflatten(1, tuple(config.image_shape)))
        else:
            self.encoder = ConvEncoder(config.image_shape, hidden, config.latent_dim)
            self.decoder = ConvDecoder(config.latent_dim, hidden[::-1], config.image_shape)
        # the fitted Gaussian over codes that `sample` draws from (see the module docstring)
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))

    def cache_key(self) -> dict:
        """What besides the config determines the trained weights: the injected functions' code."""
        key = {name: function_key(getattr(self, name)) for name in ("corrupt_fn", "reconstruction_error_fn")}
        if self.loss_fn is not None:  # only when set, so the keys of models without one stay as they were
            key["loss_fn"] = function_key(self.loss_fn)
        return key

    @staticmethod
    def _images(batch) -> Tensor:
        return batch[0] if isinstance(batch, (list, tuple)) else batch

    # -- the model
    def encode(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> z (B, d)."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """z (B, d) -> decoder logits (B, C, H, W)."""
        return self.decoder(z)

    def decode_mean(self, z: Tensor) -> Tensor:
        """z (B, d) -> reconstruction x_hat (B, C, H, W) in [0, 1]."""
        return torch.sigmoid(self.decode(z))

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> x_hat (B, C, H, W) in [0, 1], differentiable (no corruption)."""
        return self.decode_mean(self.encode(x))

    def corrupt(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """x_tilde for this model's noise (x itself for a plain AE)."""
        if self.config.noise_std == 0:
            return x
        if self.corrupt_fn is not None:
            return self.corrupt_fn(x, self.config.noise_std, self.config.noise, generator=generator)
        return corrupt(x, self.config.noise_std, self.config.noise, generator=generator)

    def error(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """err(x_hat, x) per example, (B,), with the injected function if any."""
        if self.reconstruction_error_fn is not None:
            return self.reconstruction_error_fn(x_hat, x)
        return reconstruction_error(x_hat, x, self.config.reconstruction, self.config.reduction)

    def loss(self, batch, *, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        """Mean err(g(f(x_tilde)), x), or the injected loss_fn(self, x, noise_std, noise, generator=...); logs
        "rec" and, for a denoising AE, "noisy" = err(x_tilde, x) (what returning the corrupted input unchanged
        would score, clipped to [0, 1])."""
        x = self._images(batch)
        if self.loss_fn is not None:
            loss = self.loss_fn(self, x, self.config.noise_std, self.config.noise, generator=generator)
            if not isinstance(loss, Tensor) or loss.dim() != 0:
                raise ValueError(f"loss_fn must return a scalar tensor, got {getattr(loss, 'shape', type(loss))}")
            x_tilde = None  # drawn inside loss_fn; the "noisy" log below draws its own
        else:
            x_tilde = self.corrupt(x, generator=generator)  # (B, C, H, W)
            loss = self.error(self(x_tilde), x).mean()  # err per example (B,): the target is the CLEAN x
        logs = {"rec": loss.item()}
        if self.config.noise_std > 0:
            with torch.no_grad():
                if x_tilde is None:
                    x_tilde = self.corrupt(x, generator=generator)
                logs["noisy"] = self.error(x_tilde.clamp(0.0, 1.0), x).mean().item()
        return loss, logs

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """g(f(x)) for a clean (or already corrupted) x: (B, C, H, W) -> (B, C, H, W) in [0, 1]."""
        return self(x)

    @torch.no_grad()
    def reconstruction_error(self, x: Tensor) -> Tensor:
        """The anomaly score err(g(f(x)), x) on uncorrupted inputs: (B, C, H, W) -> (B,)."""
        return self.error(self(x), x)

    @torch.no_grad()
    def fit_latent_gaussian(self, data: Tensor | Iterable) -> tuple[Tensor, Tensor]:
        """Set the sampling Gaussian to the per-dimension mean and std of the codes f(x) of `data`: a tensor
        (N, C, H, W), a Dataset or a DataLoader (batches x or (x, y)). Returns (mean, std), both (d,)."""
        device = self.latent_mean.device
        if isinstance(data, Tensor):
            data = data.split(512)
        codes = []
        for item in data:
            x = self._images(item)
            if x.dim() == len(self.config.image_shape):  # a Dataset yields single examples
                x = x[None]
            codes.append(self.encode(x.to(device)))
        z = torch.cat(codes)  # (N, d)
        if z.shape[0] < 2:
            raise ValueError("fit_latent_gaussian needs at least two examples")
        self.latent_mean.copy_(z.mean(0))
        self.latent_std.copy_(z.std(0).clamp_min(1e-6))
        return self.latent_mean.clone(), self.latent_std.clone()

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, C, H, W) in [0, 1] decoded from z ~ N(latent_mean, diag(latent_std^2)): a weak
        baseline (see the module docstring); call `fit_latent_gaussian` after training first."""
        eps = randn_like_with(self.latent_mean.new_empty(n, self.config.latent_dim), generator)  # (n, d)
        return self.decode_mean(self.latent_mean + self.latent_std * eps)
