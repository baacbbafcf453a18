"""PixelCNN (van den Oord et al., 2016, "Pixel Recurrent Neural Networks") and its gated, class-conditional
variant (van den Oord et al., 2016, "Conditional Image Generation with PixelCNN Decoders").

Notation as in course lesson 04:
    x (B, C, H, W) in [0, 1] with `levels` = L values {0, 1/(L-1), ..., 1};  k = x * (L-1) in {0, ..., L-1}
    pixels x_1, ..., x_D (D = H * W) in raster order (row by row, left to right), y (B,) class labels
    p(x) = prod_i p(x_i | x_<i)            (y added to every conditional in the class-conditional model)
    p(x_i | x_<i) = prod_c Categorical(k_{i,c}; softmax(logits[:, :, c, i]))      logits (B, L, C, H, W)
    log p(x) = sum_i sum_c log softmax(logits)[k_{i,c}]                           exact, in nats
    bits/dim = -log p(x) / (C * D * ln 2)

Causality comes from masked convolutions (gmlib.nn.masked): mask A in the first layer (a pixel does not see
itself), mask B afterwards. One forward pass gives every conditional at once (training is parallel); sampling
needs D passes, one per pixel (`sample`). Channels of one pixel are conditionally independent given the earlier
pixels (one mask group, see gmlib.nn.masked); for the course's grey-level images C = 1.

The plain PixelCNN's stacked 3x3 masks have a blind spot: pixels up and to the right (e.g. one row up, two
columns right) never reach the output. The gated PixelCNN splits the network into a vertical stack (all rows
above, full width) and a horizontal stack (the current row, left of the pixel) joined by a 1x1 connection from
vertical to horizontal, with gated units tanh(a) * sigmoid(b) and an optional class embedding added inside
both gates: no blind spot.

The pieces a lesson teaches are small pure functions (`causal_mask` and `input_gradient_map` in gmlib.nn.masked,
`categorical_log_prob` / `categorical_nll`, `nats_to_bits_per_dim`, `raster_order`, `sample_pixels`); `PixelCNN`
takes replacements for the mask and the likelihood, so a student trains a real model with their own code:
`PixelCNN(config, mask_fn=mine, log_prob_fn=mine)` or `PixelCNN(config, mask_fn=mine, nll_fn=mine)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import function_key
from ..nn.masked import MaskedConv2d, MaskFn
from ..train import split_batch

__all__ = [
    "PixelCNNConfig",
    "PixelCNN",
    "GatedMaskedConv2d",
    "to_levels",
    "categorical_log_prob",
    "categorical_nll",
    "nats_to_bits_per_dim",
    "raster_order",
    "sample_categorical",
    "sample_pixels",
]


# ---------------------------------------------------------------------------------------------- the pieces
def to_levels(x: Tensor, levels: int) -> Tensor:
    """Level indices k = round(x * (levels - 1)) of images on the `levels`-valued grid: (B, ...) -> (B, ...) int64.

    A concise error, instead of silent rounding, when x is not on the grid (e.g. dequantized data) or not in
    [0, 1].
    """
    scaled = x * (levels - 1)
    k = scaled.round()
    if x.numel() and ((k - scaled).abs().max() > 1e-3 or k.min() < 0 or k.max() > levels - 1):
        raise ValueError(
            f"x must lie on the grid {{0, 1/{levels - 1}, ..., 1}} of levels={levels} values in [0, 1] "
            "(not dequantized or rescaled data)"
        )
    return k.long()


def categorical_log_prob(logits: Tensor, k: Tensor) -> Tensor:
    """log p(x) = sum over channels and pixels of log softmax(logits)[k]: (B, L, C, H, W), (B, C, H, W) -> (B,)."""
    log_p = F.log_softmax(logits, dim=1)  # (B, L, C, H, W)
    return log_p.gather(1, k.unsqueeze(1)).squeeze(1).flatten(1).sum(dim=1)


def categorical_nll(logits: Tensor, k: Tensor) -> Tensor:
    """-log p(x) per image in nats, the negative of `categorical_log_prob`: (B, L, C, H, W), (B, C, H, W) -> (B,)."""
    return -categorical_log_prob(logits, k)


def nats_to_bits_per_dim(nll: Tensor | float, num_dims: int) -> Tensor | float:
    """Negative log-likelihood in nats per example -> bits per dimension: nll / (num_dims * ln 2)."""
    return nll / (num_dims * math.log(2.0))


def raster_order(height: int, width: int) -> Tensor:
    """The generation order of the pixels: (H * W, 2) int64 rows of (row, col), row by row, left to right."""
    rows = torch.arange(height).repeat_interleave(width)  # (H*W,)
    cols = torch.arange(width).repeat(height)  # (H*W,)
    return torch.stack([rows, cols], dim=1)


def sample_categorical(logits: Tensor, temperature: float = 1.0, *, generator: torch.Generator | None = None) -> Tensor:
    """One draw per row from softmax(logits / temperature): (..., L) -> (...) int64; temperature 0 is argmax.

    The draw happens on the generator's device (then moves back), so a CPU generator gives the same samples on
    every device.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = F.softmax(logits.float() / temperature, dim=-1).reshape(-1, logits.shape[-1])  # (N, L)
    if generator is not None:
        probs = probs.to(generator.device)
    k = torch.multinomial(probs, 1, generator=generator)  # (N, 1)
    return k.view(logits.shape[:-1]).to(logits.device)


def sample_pixels(
    logits_fn: Callable[[Tensor], Tensor],
    n: int,
    height: int,
    width: int,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Ancestral sampling of n one-channel images, one pixel at a time in raster order: -> (n, 1, H, W) int64.

    logits_fn(k) maps level indices k (n, 1, H, W) int64 to logits (n, L, 1, H, W) whose values at pixel i depend
    on the pixels before i only (e.g. `PixelCNN.logits_from_levels`). Unfilled pixels hold 0. Pixel i is drawn
    from softmax(logits at i), computed from the image with pixels 0..i-1 already drawn: H * W calls of
    logits_fn. k lives on the CPU (a logits_fn for a model elsewhere moves it there and back). This is the loop
    of `PixelCNN.sample` without its extras (channels, temperature, trajectory).
    """
    k = torch.zeros(n, 1, height, width, dtype=torch.long)
    for r, c in raster_order(height, width).tolist():
        logits = logits_fn(k)[:, :, 0, r, c]  # (n, L): only pixel (r, c)'s conditional is used
        k[:, 0, r, c] = sample_categorical(logits, 1.0, generator=generator).cpu()  # (n,)
    return k


# ---------------------------------------------------------------------------------------------- building blocks
class ResidualMaskedBlock(nn.Module):
    """h + conv1x1(relu(masked_B(relu(h)))) (+ a class bias): the plain PixelCNN's layer, causal by mask B."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        num_classes: int = 0,
        mask_fn: MaskFn | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, kernel_size, "B", mask_fn=mask_fn)
        self.dropout = nn.Dropout(dropout)  # per feature, per pixel: keeps causality
        self.out = nn.Conv2d(channels, channels, 1)
        self.class_bias = nn.Embedding(num_classes, channels) if num_classes else None

    def forward(self, h: Tensor, y: Tensor | None = None) -> Tensor:  # (B, ch, H, W) -> (B, ch, H, W)
        a = self.conv(F.relu(h))
        if self.class_bias is not None:
            a = a + self.class_bias(y)[:, :, None, None]
        return h + self.out(self.dropout(F.relu(a)))


class GatedMaskedConv2d(nn.Module):
    """One gated PixelCNN layer: (v, h) -> (v, h), both (B, ch, H, W).

    vertical stack v:   a (p+1) x k kernel (p = k // 2) over rows r-p..r, all k columns; mask A cuts row r, so
                        v at row r depends on rows above r only (mask B keeps row r of v, which already does).
    horizontal stack h: a 1 x (p+1) kernel over columns c-p..c of row r; mask A cuts column c.
    h also receives v through a 1x1 convolution (legal: v at row r sees only rows above), which removes the
    blind spot. Gates: tanh(a) * sigmoid(b) (+ class embedding inside both), a residual on h for mask B.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int,
        mask_type: str,
        num_classes: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"the gated layer's kernel_size must be odd and >= 3, got {kernel_size}")
        if mask_type == "B" and in_channels != channels:
            raise ValueError("a mask-B gated layer has a residual connection: in_channels must equal channels")
        self.mask_type = mask_type
        self.pad = kernel_size // 2
        p = self.pad
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (p + 1, kernel_size))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, p + 1))
        v_mask = torch.ones(1, 1, p + 1, kernel_size)
        h_mask = torch.ones(1, 1, 1, p + 1)
        if mask_type == "A":
            v_mask[..., -1, :] = 0.0  # the current row
            h_mask[..., -1] = 0.0  # the current pixel
        self.register_buffer("v_mask", v_mask)
        self.register_buffer("h_mask", h_mask)
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)
        self.class_embedding = nn.Embedding(num_classes, 2 * channels) if num_classes else None

    @staticmethod
    def gate(a: Tensor) -> Tensor:
        """tanh(first half) * sigmoid(second half) over channels: (B, 2ch, H, W) -> (B, ch, H, W)."""
        t, s = a.chunk(2, dim=1)
        return torch.tanh(t) * torch.sigmoid(s)

    def forward(self, v: Tensor, h: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = self.pad
        # pad left/right by p and on top by p: output row r sees rows r-p..r, columns c-p..c+p
        v_pre = F.conv2d(F.pad(v, (p, p, p, 0)), self.vertical.weight * self.v_mask, self.vertical.bias)  # (B, 2ch, H, W)
        # pad on the left by p: output column c sees columns c-p..c of the same row
        h_pre = F.conv2d(F.pad(h, (p, 0, 0, 0)), self.horizontal.weight * self.h_mask, self.horizontal.bias)
        h_pre = h_pre + self.v_to_h(v_pre)  # (B, 2ch, H, W)
        if self.class_embedding is not None:
            cond = self.class_embedding(y)[:, :, None, None]  # (B, 2ch, 1, 1)
            v_pre, h_pre = v_pre + cond, h_pre + cond
        v_new = self.gate(v_pre)  # (B, ch, H, W)
        h_new = self.h_out(self.dropout(self.gate(h_pre)))
        if self.mask_type == "B":
            h_new = h_new + h
        return v_new, h_new


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class PixelCNNConfig:
    image_shape: tuple[int, int, int] = (1, 8, 8)
    levels: int = 17  # discrete values per pixel: 2 (binarized), 17 (raw digits), 256 (MNIST)
    channels: int = 64  # hidden feature maps
    num_layers: int = 6  # masked layers after the first (mask A) layer
    first_kernel_size: int = 7  # mask A layer
    kernel_size: int = 3  # mask B layers (both stacks of the gated variant)
    gated: bool = False  # gated PixelCNN: vertical + horizontal stacks, no blind spot
    num_classes: int = 0  # > 0: class-conditional p(x | y)
    dropout: float = 0.0  # inside each mask-B layer, during training only (the digits overfit quickly)


class PixelCNN(nn.Module):
    """An autoregressive model of discrete images; `loss(batch)` is the mean NLL in nats per image.

    batch = x or (x, y), with x (B, C, H, W) on the grid of `config.levels` values in [0, 1].
    """

    def __init__(
        self,
        config: PixelCNNConfig,
        *,
        mask_fn: MaskFn | None = None,
        log_prob_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        nll_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    ):
        """mask_fn(kernel_size, mask_type, in_channels, out_channels) builds the plain model's masks;
        log_prob_fn(logits, k) -> (B,) log p(x), or nll_fn(logits, k) -> (B,) -log p(x) (at most one of the two),
        computes the likelihood from the logits (B, L, C, H, W) and the level indices k (B, C, H, W)."""
        super().__init__()
        if log_prob_fn is not None and nll_fn is not None:
            raise ValueError("pass log_prob_fn or nll_fn, not both")
        if config.levels < 2:
            raise ValueError(f"levels must be at least 2, got {config.levels}")
        if config.gated and mask_fn is not None:
            raise ValueError("mask_fn builds the plain PixelCNN's masks; the gated stacks use their own shifts")
        self.config = config
        self.mask_fn = mask_fn
        self.log_prob_fn = log_prob_fn
        self.nll_fn = nll_fn
        c_img, ch, nc = config.image_shape[0], config.channels, config.num_classes
        if config.gated:
            self.layers = nn.ModuleList(
                [GatedMaskedConv2d(c_img, ch, config.first_kernel_size, "A", nc)]
                + [GatedMaskedConv2d(ch, ch, config.kernel_size, "B", nc, config.dropout) for _ in range(config.num_layers)]
            )
        else:
            self.input_conv = MaskedConv2d(c_img, ch, config.first_kernel_size, "A", mask_fn=mask_fn)
            self.input_class_bias = nn.Embedding(nc, ch) if nc else None
            self.layers = nn.ModuleList(
                [ResidualMaskedBlock(ch, config.kernel_size, nc, mask_fn, config.dropout) for _ in range(config.num_layers)]
            )
        # 1x1 convolutions: per pixel, hence causal
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(ch, ch, 1), nn.ReLU(), nn.Conv2d(ch, config.levels * c_img, 1))

    # -- helpers
    _split = staticmethod(split_batch)

    def _check_label(self, y: Tensor | None) -> Tensor | None:
        if self.config.num_classes == 0:
            return None
        if y is None:
            raise ValueError("this PixelCNN is class-conditional (num_classes > 0): pass the labels y")
        return y.long()

    def cache_key(self) -> dict:
        """What besides the config determines the trained weights: the injected functions' code."""
        key = {name: function_key(getattr(self, name)) for name in ("mask_fn", "log_prob_fn")}
        if self.nll_fn is not None:  # only when set, so the keys of models without it stay as they were
            key["nll_fn"] = function_key(self.nll_fn)
        return key

    @property
    def num_dims(self) -> int:
        """D = C * H * W, the number of discrete variables per image."""
        return math.prod(self.config.image_shape)

    def order(self) -> Tensor:
        """The raster order in which `sample` fills the pixels: (H * W, 2) of (row, col)."""
        _, height, width = self.config.image_shape
        return raster_order(height, width)

    # -- the model
    def network(self, u: Tensor, y: Tensor | None = None) -> Tensor:
        """The masked network on real-valued inputs u (B, C, H, W) -> logits (B, L, C, H, W).

        u = 2 k / (L-1) - 1 in [-1, 1] for level indices k; logits at pixel i depend on u at pixels before i only
        (differentiable in u, which is how the tests check causality).
        """
        y = self._check_label(y)
        b, c_img, height, width = u.shape
        if self.config.gated:
            v = h = u
            for layer in self.layers:
                v, h = layer(v, h, y)
        else:
            h = self.input_conv(u)  # (B, ch, H, W)
            if self.input_class_bias is not None:
                h = h + self.input_class_bias(y)[:, :, None, None]
            for layer in self.layers:
                h = layer(h, y)
        out = self.head(h)  # (B, L*C, H, W)
        return out.view(b, self.config.levels, c_img, height, width)

    def logits_from_levels(self, k: Tensor, y: Tensor | None = None) -> Tensor:
        """Level indices k (B, C, H, W) int64 -> logits (B, L, C, H, W); logits at pixel i depend on k_<i only."""
        u = k.to(self.head[1].weight.dtype) * (2.0 / (self.config.levels - 1)) - 1.0  # (B, C, H, W) in [-1, 1]
        return self.network(u, y)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """x (B, C, H, W) on the levels grid -> logits (B, L, C, H, W)."""
        return self.logits_from_levels(to_levels(x, self.config.levels), y)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Exact log p(x) (or log p(x | y)) in nats: (B, C, H, W) -> (B,)."""
        k = to_levels(x, self.config.levels)
        logits = self.logits_from_levels(k, y)
        if self.nll_fn is not None:
            return -self.nll_fn(logits, k)
        return (self.log_prob_fn or categorical_log_prob)(logits, k)

    def bits_per_dim(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """-log p(x) / (D ln 2) per image: (B, C, H, W) -> (B,)."""
        return nats_to_bits_per_dim(-self.log_prob(x, y), self.num_dims)

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        x, y = self._split(batch)
        nll = -self.log_prob(x, y).mean()
        return nll, {"bits_per_dim": float(nats_to_bits_per_dim(nll.detach(), self.num_dims))}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
        temperature: float = 1.0,
        trajectory_stride: int = 1,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """n images (n, C, H, W) in [0, 1] (level k shown as k / (L-1)), one pixel at a time in raster order.

        temperature divides the logits (0: the most likely level, greedy). A class-conditional model needs y (n,).
        return_trajectory: also return the image after every `trajectory_stride`-th pixel, (T, n, C, H, W) with
        frame 0 the empty image (unfilled pixels are 0) and the last frame the finished sample; with the default
        stride 1, T = H * W + 1 and frame t has exactly the first t pixels of `order()` filled.
        """
        if trajectory_stride < 1:
            raise ValueError(f"trajectory_stride must be >= 1, got {trajectory_stride}")
        was_training = self.training
        self.eval()  # no dropout while sampling, so equal generators give equal samples in any mode
        try:
            return self._sample(n, y, generator, return_trajectory, temperature, trajectory_stride)
        finally:
            self.train(was_training)

    def _sample(self, n, y, generator, return_trajectory, temperature, trajectory_stride):
        ref = self.head[1].weight
        if y is not None:
            y = y.to(ref.device)
        c_img, height, width = self.config.image_shape
        scale = 1.0 / (self.config.levels - 1)
        k = torch.zeros(n, c_img, height, width, dtype=torch.long, device=ref.device)
        frames = [k.to(ref.dtype) * scale]
        order = self.order().tolist()
        for step, (r, c) in enumerate(order, start=1):
            logits = self.logits_from_levels(k, y)[:, :, :, r, c]  # (n, L, C)
            k[:, :, r, c] = sample_categorical(logits.transpose(1, 2), temperature, generator=generator)  # (n, C)
            if return_trajectory and (step % trajectory_stride == 0 or step == len(order)):
                frames.append(k.to(ref.dtype) * scale)
        x = k.to(ref.dtype) * scale
        if return_trajectory:
            return x, torch.stack(frames)
        return x
