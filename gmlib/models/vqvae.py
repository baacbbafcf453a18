"""Vector-quantised variational autoencoder, VQ-VAE (van den Oord, Vinyals and Kavukcuoglu, 2017).

Notation as in course lesson 10:
    x (B, C, H, W) data in [0, 1]; z_e = E(x) (B, D, h, w) encoder output, a grid of h x w vectors of size D
    codebook e (K, D): K code vectors e_1..e_K
    quantisation     k(i, j) = argmin_k ||z_e(i, j) - e_k||^2,   z_q(i, j) = e_k(i, j)       (nearest code)
    straight-through z_q_st = z_e + sg[z_q - z_e]: equals z_q forward; backward, dL/dz_q is passed to z_e as is
    decoder          x_hat = sigmoid(G(z_q_st)) in [0, 1]
    loss             L = rec(x_hat, x) + ||sg[z_e] - e||^2 + beta * ||z_e - sg[e]||^2
                         reconstruction   codebook loss     commitment loss
where sg[.] stops gradients (`.detach()`), rec is the mean squared error (or binary cross entropy) per pixel
and the two vector terms are means over the h*w*D entries. The codebook loss moves only the codes towards the
encoder outputs; the commitment loss moves only the encoder towards its codes. With `ema=True` the codebook
is instead an exponential moving average of the encoder outputs assigned to each code (the paper's appendix;
Razavi et al., 2019), and the codebook loss is dropped (it would have no parameter to train).

Perplexity exp(H(p)) of the code usage p (the fraction of grid positions assigned to each code) is logged: it
is K when every code is used equally and 1 when one code takes everything (codebook collapse). Optional
dead-code reinitialisation (`dead_code_threshold > 0`) moves codes whose running usage falls below
threshold / K onto random encoder outputs of the current batch. By default (`init_from_data`) the first
training step also places all K codes on random encoder outputs, so no code starts out of reach.

Sampling needs a prior over the (h, w) grid of code indices. The built-in ones are weak baselines that treat
the positions as independent: "uniform" (every code equally likely) and "histogram" (per position, the
empirical code frequencies of the training set, set by `fit_code_histogram(data)` after training). A learned
autoregressive prior (a PixelCNN over the index grid, lesson 10) is passed as `sample(n, prior=pixelcnn)`:
any object with `sample(n, generator=...)` returning either
    (n, h, w) long indices in {0, ..., K-1}, or
    (n, 1, h, w) floats in [0, 1] on the K levels k / (K - 1) (`indices_to_levels` / `levels_to_indices`).
Its training data is `model.encode_indices(x)`, or `indices_to_levels(...)` of it for an image model.

The pieces a lesson teaches are small pure functions (`vector_quantize`, `straight_through`, `vq_losses`,
`perplexity`); `VQVAE(config, quantize_fn=mine, straight_through_fn=mine, vq_losses_fn=mine)` trains with a
student's own pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import function_key
from ..nn.conv import ConvDecoder, ConvEncoder, ResidualBlock, conv_sizes

__all__ = [
    "VQVAEConfig",
    "VQVAE",
    "vector_quantize",
    "straight_through",
    "vq_losses",
    "perplexity",
    "indices_to_levels",
    "levels_to_indices",
]


# ---------------------------------------------------------------------------------------------- the pieces
def vector_quantize(z_e: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest code by squared Euclidean distance (first one on ties).

    z_e: a grid (B, D, h, w) (the code dimension is dim 1, as in conv feature maps) or vectors (N, D);
    codebook: (K, D). Returns z_q shaped like z_e and indices (B, h, w) or (N,) long.
    """
    if z_e.dim() == 2:
        flat = z_e  # (N, D)
    else:
        flat = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])  # (B*h*w, D)
    # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, without forming the (N, K, D) differences
    dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)[None]  # (N, K)
    indices = dist.argmin(dim=1)  # (N,)
    z_q = codebook[indices]  # (N, D)
    if z_e.dim() == 2:
        return z_q, indices
    b, d, *grid = z_e.shape
    return z_q.view(b, *grid, d).movedim(-1, 1), indices.view(b, *grid)


def straight_through(z_e: Tensor, z_q: Tensor) -> Tensor:
    """z_e + sg[z_q - z_e]: the value of z_q, with the gradient w.r.t. the output passed unchanged to z_e."""
    return z_e + (z_q - z_e).detach()


def vq_losses(z_e: Tensor, z_q: Tensor) -> tuple[Tensor, Tensor]:
    """(codebook loss, commitment loss) = (mean ||sg[z_e] - z_q||^2, mean ||z_e - sg[z_q]||^2), scalars.

    z_q must be the codes themselves (`codebook[indices]`, so gradients reach the codebook), not the
    straight-through value. Equal values, different gradients: the first trains the codebook only, the
    second the encoder only.
    """
    return F.mse_loss(z_q, z_e.detach()), F.mse_loss(z_e, z_q.detach())


def perplexity(indices: Tensor, num_codes: int) -> Tensor:
    """exp(entropy) of the code usage histogram of `indices` (any shape): K for uniform use, 1 for a single code."""
    counts = torch.bincount(indices.flatten(), minlength=num_codes).to(torch.float32)  # (K,)
    p = counts / counts.sum()
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()  # 0 log 0 = 0
    return entropy.exp()


def indices_to_levels(indices: Tensor, num_codes: int) -> Tensor:
    """Code indices (n, h, w) long -> (n, 1, h, w) floats k / (K - 1) in [0, 1], the grey-level view."""
    return (indices.to(torch.float32) / max(num_codes - 1, 1))[:, None]


def levels_to_indices(levels: Tensor, num_codes: int) -> Tensor:
    """(n, 1, h, w) floats on the levels k / (K - 1) -> indices (n, h, w) long (rounded, clamped to 0..K-1)."""
    return (levels[:, 0] * (num_codes - 1)).round().long().clamp(0, num_codes - 1)


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class VQVAEConfig:
    image_shape: tuple[int, int, int] = (1, 8, 8)
    codebook_size: int = 32  # K
    code_dim: int = 16  # D
    channels: int = 64  # width of the hidden conv layers
    num_downsamples: int = 1  # stride-2 stages: 8x8 images give a 4x4 grid of codes (2 stages: 2x2)
    num_res_blocks: int = 1  # residual blocks in the encoder and in the decoder
    beta: float = 0.25  # weight on the commitment loss
    reconstruction: str = "mse"  # "mse" on sigmoid(logits) or "bce" with logits, mean per pixel
    ema: bool = False  # codebook as an EMA of assigned encoder outputs instead of the codebook loss
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.0  # > 0: reinitialise codes with running usage below threshold / K
    init_from_data: bool = True  # first training step: codes := K random encoder outputs of that batch


class VQVAE(nn.Module):
    """Conv encoder to a (h, w) grid of D-vectors, nearest-code quantisation, conv decoder.
    `loss(batch)` is reconstruction + codebook + beta * commitment; batch = x or (x, y), labels ignored."""

    def __init__(
        self,
        config: VQVAEConfig,
        *,
        quantize_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
        straight_through_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        vq_losses_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    ):
        super().__init__()
        if config.reconstruction not in ("mse", "bce"):
            raise ValueError(f"reconstruction must be 'mse' or 'bce', got {config.reconstruction!r}")
        if config.num_downsamples < 1:
            raise ValueError("num_downsamples must be at least 1")
        self.config = config
        self.quantize_fn = quantize_fn
        self.straight_through_fn = straight_through_fn  # like `straight_through`
        self.vq_losses_fn = vq_losses_fn  # like `vq_losses`
        c, k, d = config.channels, config.codebook_size, config.code_dim
        stages = (c,) * config.num_downsamples
        self.encoder = nn.Sequential(
            ConvEncoder(config.image_shape, stages, None),
            *[ResidualBlock(c) for _ in range(config.num_res_blocks)],
            nn.ReLU(),
            nn.Conv2d(c, d, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(d, c, 3, padding=1),
            *[ResidualBlock(c) for _ in range(config.num_res_blocks)],
            nn.ReLU(),
            ConvDecoder(None, stages, config.image_shape),
        )
        _, h, w = config.image_shape
        self.grid_shape = (conv_sizes(h, config.num_downsamples)[-1], conv_sizes(w, config.num_downsamples)[-1])
        init = torch.empty(k, d).uniform_(-1.0 / k, 1.0 / k)
        if config.ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_cluster_size", torch.ones(k))
            self.register_buffer("ema_embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("code_usage", torch.full((k,), 1.0 / k))  # running fraction of positions per code
        self.register_buffer("codebook_initialized", torch.tensor(not config.init_from_data))
        self.register_buffer("code_histogram", torch.zeros(*self.grid_shape, k))  # counts per position

    def cache_key(self) -> dict:
        """What besides the config determines the trained weights: the injected functions' code (the
        straight-through and loss functions only when given, so older keys stay valid)."""
        key = {"quantize_fn": function_key(self.quantize_fn)}
        for name in ("straight_through_fn", "vq_losses_fn"):
            if getattr(self, name) is not None:
                key[name] = function_key(getattr(self, name))
        return key

    @staticmethod
    def _images(batch) -> Tensor:
        return batch[0] if isinstance(batch, (list, tuple)) else batch

    # -- the model
    def encode(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> z_e (B, D, h, w)."""
        return self.encoder(x)

    def quantize(self, z_e: Tensor) -> tuple[Tensor, Tensor]:
        """z_e (B, D, h, w) -> z_q (B, D, h, w), indices (B, h, w), with the injected quantiser if any."""
        return (self.quantize_fn or vector_quantize)(z_e, self.codebook)

    def decode(self, z_q: Tensor) -> Tensor:
        """z_q (B, D, h, w) -> decoder logits (B, C, H, W)."""
        return self.decoder(z_q)

    def _reconstruction_loss(self, logits: Tensor, x: Tensor) -> Tensor:
        if self.config.reconstruction == "bce":
            return F.binary_cross_entropy_with_logits(logits, x)
        return F.mse_loss(torch.sigmoid(logits), x)

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        x = self._images(batch)
        z_e = self.encode(x)  # (B, D, h, w)
        if self.training and not self.codebook_initialized:
            self._init_codebook(z_e.detach())
        z_q, indices = self.quantize(z_e)  # (B, D, h, w), (B, h, w)
        if self.training:
            self._update_codebook(z_e.detach(), indices)
        logits = self.decode((self.straight_through_fn or straight_through)(z_e, z_q))  # (B, C, H, W)
        rec = self._reconstruction_loss(logits, x)
        codebook_loss, commitment_loss = (self.vq_losses_fn or vq_losses)(z_e, z_q)
        loss = rec + self.config.beta * commitment_loss
        if not self.config.ema:
            loss = loss + codebook_loss
        logs = {
            "rec": rec.item(),
            "codebook": codebook_loss.item(),
            "commitment": commitment_loss.item(),
            "perplexity": perplexity(indices, self.config.codebook_size).item(),
        }
        return loss, logs

    @torch.no_grad()
    def _init_codebook(self, z_e: Tensor) -> None:
        """Codes := K distinct random encoder outputs of the batch (with repeats if it has fewer than K).

        A codebook drawn far from the encoder outputs lets one code win every position from the first step
        (perplexity 1, the other codes never receive a gradient); starting on the data avoids that collapse.
        """
        k = self.config.codebook_size
        flat = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])  # (N, D)
        n = flat.shape[0]
        pick = torch.randperm(n, device=flat.device)[:k] if n >= k else torch.randint(0, n, (k,), device=flat.device)
        self.codebook.data.copy_(flat[pick])
        if self.config.ema:
            self.ema_cluster_size.fill_(1.0)
            self.ema_embed_sum.copy_(flat[pick])
        self.codebook_initialized.fill_(True)

    @torch.no_grad()
    def _update_codebook(self, z_e: Tensor, indices: Tensor) -> None:
        """Training-time bookkeeping: running code usage, EMA codebook update, dead-code reinitialisation."""
        k, cfg = self.config.codebook_size, self.config
        flat = z_e.movedim(1, -1).reshape(-1, z_e.shape[1])  # (N, D)
        idx = indices.flatten()  # (N,)
        counts = torch.bincount(idx, minlength=k).to(flat.dtype)  # (K,)
        self.code_usage.mul_(0.99).add_(0.01 * counts / counts.sum())
        if cfg.ema:
            sums = torch.zeros_like(self.ema_embed_sum).index_add_(0, idx, flat)  # (K, D)
            self.ema_cluster_size.mul_(cfg.ema_decay).add_((1 - cfg.ema_decay) * counts)
            self.ema_embed_sum.mul_(cfg.ema_decay).add_((1 - cfg.ema_decay) * sums)
            n = self.ema_cluster_size.sum()
            smoothed = (self.ema_cluster_size + 1e-5) / (n + k * 1e-5) * n  # Laplace smoothing: no division by 0
            self.codebook.copy_(self.ema_embed_sum / smoothed[:, None])
        if cfg.dead_code_threshold > 0:
            dead = (self.code_usage < cfg.dead_code_threshold / k).nonzero().flatten()  # (n_dead,)
            if len(dead):
                pick = torch.randint(0, flat.shape[0], (len(dead),), device=flat.device)
                self.codebook.data[dead] = flat[pick]
                self.code_usage[dead] = 1.0 / k
                if cfg.ema:
                    self.ema_cluster_size[dead] = 1.0
                    self.ema_embed_sum[dead] = flat[pick]

    @torch.no_grad()
    def encode_indices(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> code indices (B, h, w) long."""
        return self.quantize(self.encode(x))[1]

    @torch.no_grad()
    def decode_indices(self, indices: Tensor) -> Tensor:
        """Code indices (B, h, w) long -> images (B, C, H, W) in [0, 1]."""
        indices = indices.to(self.codebook.device)
        z_q = self.codebook[indices].movedim(-1, 1)  # (B, D, h, w)
        return torch.sigmoid(self.decode(z_q))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Decode the quantised code of x: (B, C, H, W) -> (B, C, H, W) in [0, 1]."""
        return self.decode_indices(self.encode_indices(x))

    @torch.no_grad()
    def fit_code_histogram(self, data: Tensor | Iterable) -> Tensor:
        """Count, per grid position, the codes of `data` (a tensor (N, C, H, W), a Dataset or a DataLoader);
        stores and returns the counts (h, w, K) used by `sample(prior="histogram")`."""
        k = self.config.codebook_size
        if isinstance(data, Tensor):
            data = data.split(512)
        counts = torch.zeros_like(self.code_histogram)
        for item in data:
            x = self._images(item)
            if x.dim() == len(self.config.image_shape):  # a Dataset yields single examples
                x = x[None]
            idx = self.encode_indices(x.to(self.codebook.device))  # (B, h, w)
            counts += F.one_hot(idx, k).sum(0).to(counts.dtype)  # (h, w, K)
        self.code_histogram.copy_(counts)
        return counts.clone()

    @torch.no_grad()
    def sample_indices(self, n: int, *, generator: torch.Generator | None = None, prior=None) -> Tensor:
        """n grids of code indices (n, h, w) long from `prior` (see `sample`)."""
        k = self.config.codebook_size
        h, w = self.grid_shape
        device = self.codebook.device
        if prior is None:
            prior = "histogram" if self.code_histogram.sum() > 0 else "uniform"
        if isinstance(prior, str):
            if prior == "uniform":
                probs = torch.ones(h * w, k)
            elif prior == "histogram":
                if self.code_histogram.sum() == 0:
                    raise ValueError("no code histogram yet: call fit_code_histogram(training data) first")
                probs = self.code_histogram.reshape(h * w, k).float()
            else:
                raise ValueError(f"prior must be None, 'uniform', 'histogram' or an object with .sample, got {prior!r}")
            gen_device = generator.device if generator is not None else device
            draws = torch.multinomial(probs.to(gen_device), n, replacement=True, generator=generator)  # (h*w, n)
            return draws.t().reshape(n, h, w).to(device)
        out = prior.sample(n, generator=generator)
        if out.dtype.is_floating_point:
            if out.dim() != 4 or out.shape[1] != 1:
                raise ValueError(f"a prior's float samples must be (n, 1, h, w) levels, got {tuple(out.shape)}")
            out = levels_to_indices(out, k)
        if tuple(out.shape) != (n, h, w):
            raise ValueError(f"the prior must sample ({n}, {h}, {w}) indices, got {tuple(out.shape)}")
        return out.long().to(device)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, prior=None) -> Tensor:
        """n images (n, C, H, W) in [0, 1] decoded from code grids drawn from `prior`:

        None         the per-position code histogram if `fit_code_histogram` was called, else uniform;
        "uniform"    each position uniform over the K codes (independent);
        "histogram"  each position independently from its empirical code frequencies (a weak prior);
        an object    with `sample(n, generator=...)` -> (n, h, w) long or (n, 1, h, w) levels k / (K - 1).
        """
        return self.decode_indices(self.sample_indices(n, generator=generator, prior=prior))
