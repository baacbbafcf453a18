"""Noise-prediction networks eps_theta(x_t, t, y) for diffusion: a small UNet for images and an MLP for 2D points.

Both take integer timesteps t (B,) through a sinusoidal embedding (Vaswani et al., 2017, as used by Ho et al.,
2020) and optional class labels y (B,) through an embedding with one extra "null" class (index num_classes),
which is what classifier-free guidance (Ho and Salimans, 2022) trains with and samples from unconditionally.
y = None means the null class for every example.

UNet (Ronneberger et al., 2015, in the DDPM form, without attention): per resolution, residual blocks with
GroupNorm, SiLU and an additive time/class embedding; a stride-2 convolution down between resolutions, nearest
upsampling back up (the next block's 3x3 convolutions smooth it; an extra convolution at the high resolution
would cost a fifth of the network's compute on 8x8 digits), and skip connections by concatenation. With
widths=(32, 64) it has two resolutions: 8x8 and 4x4 for digits, 28x28 and 14x14 for MNIST (odd sizes work too:
upsampling goes to the skip connection's size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import MLP

__all__ = ["SinusoidalTimeEmbedding", "ResidualBlock", "UNet", "MLPDenoiser"]


class SinusoidalTimeEmbedding(nn.Module):
    """t (B,) -> (B, dim): [sin(t w_k), cos(t w_k)] with frequencies w_k = max_period^(-k / (dim/2 - 1))."""

    def __init__(self, dim: int, max_period: float = 10_000.0):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"dim must be an even number >= 4, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - 1))
        self.register_buffer("freqs", freqs, persistent=False)  # (dim/2,)

    def forward(self, t: Tensor) -> Tensor:
        args = t.float()[:, None] * self.freqs[None]  # (B, dim/2)
        return torch.cat([args.sin(), args.cos()], dim=1)  # (B, dim)


def _groups(channels: int, max_groups: int = 8) -> int:
    return math.gcd(channels, max_groups)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv, + a projection of the embedding per channel, GroupNorm-SiLU-conv, + skip."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(_groups(out_ch), out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class _Conditioning(nn.Module):
    """Time embedding (sinusoidal then an MLP) plus an optional class embedding with a null class."""

    def __init__(self, base_dim: int, emb_dim: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.time = nn.Sequential(SinusoidalTimeEmbedding(base_dim), MLP(base_dim, [emb_dim], emb_dim))
        self.label = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None

    def forward(self, t: Tensor, y: Tensor | None, batch: int) -> Tensor:
        if t.dim() == 0:
            t = t.expand(batch)
        emb = self.time(t)  # (B, E)
        if self.label is not None:
            if y is None:
                y = torch.full((batch,), self.num_classes, dtype=torch.long, device=t.device)
            emb = emb + self.label(y.long())
        elif y is not None:
            raise ValueError("this network is unconditional (num_classes = 0): do not pass labels y")
        return emb


class UNet(nn.Module):
    """eps_theta(x_t, t, y): (B, C, H, W), (B,) int, (B,) int or None -> (B, C, H, W).

    widths: channels per resolution (len(widths) resolutions, one stride-2 downsampling between two);
    num_classes > 0 adds a label embedding with a null class (index num_classes) for classifier-free guidance.
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (32, 64),
        *,
        num_classes: int = 0,
        blocks_per_level: int = 1,
    ):
        super().__init__()
        widths = list(widths)
        if not widths:
            raise ValueError("widths must list at least one channel count")
        emb_dim = 4 * widths[0]
        self.num_classes = num_classes
        self.cond = _Conditioning(widths[0], emb_dim, num_classes)
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)

        self.down = nn.ModuleList()  # per level: residual blocks
        self.downsample = nn.ModuleList()  # between levels
        ch = widths[0]
        skip_channels = []
        for level, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(blocks_per_level):
                blocks.append(ResidualBlock(ch, w, emb_dim))
                ch = w
                skip_channels.append(ch)
            self.down.append(blocks)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))

        self.mid = ResidualBlock(ch, ch, emb_dim)

        self.up = nn.ModuleList()
        for w in reversed(widths):
            blocks = nn.ModuleList()
            for _ in range(blocks_per_level):
                blocks.append(ResidualBlock(ch + skip_channels.pop(), w, emb_dim))
                ch = w
            self.up.append(blocks)

        self.norm_out = nn.GroupNorm(_groups(ch), ch)
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        emb = self.cond(t, y, x.shape[0])  # (B, E)
        h = self.conv_in(x)  # (B, w0, H, W)
        skips = []
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)  # (B, w, H/2, W/2)
        h = self.mid(h, emb)
        for blocks in self.up:
            for block in blocks:
                if h.shape[-2:] != skips[-1].shape[-2:]:  # nearest upsampling; the block's convolutions smooth it
                    h = F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest")  # (B, w, 2H, 2W)
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C, H, W)


class MLPDenoiser(nn.Module):
    """eps_theta(x_t, t, y) for points: (B, d), (B,) int, (B,) or None -> (B, d).

    The input is [x_t, sinusoidal(t), label embedding] concatenated, through an MLP with SiLU activations.
    """

    def __init__(
        self,
        data_dim: int = 2,
        hidden: Sequence[int] = (128, 128, 128),
        *,
        time_dim: int = 32,
        num_classes: int = 0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.time = SinusoidalTimeEmbedding(time_dim)
        self.label = nn.Embedding(num_classes + 1, time_dim) if num_classes > 0 else None
        in_dim = data_dim + time_dim * (2 if num_classes > 0 else 1)
        self.net = MLP(in_dim, list(hidden), data_dim)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        b = x.shape[0]
        if t.dim() == 0:
            t = t.expand(b)
        parts = [x, self.time(t)]  # (B, d), (B, time_dim)
        if self.label is not None:
            if y is None:
                y = torch.full((b,), self.num_classes, dtype=torch.long, device=x.device)
            parts.append(self.label(y.long()))
        elif y is not None:
            raise ValueError("this network is unconditional (num_classes = 0): do not pass labels y")
        return self.net(torch.cat(parts, dim=1))
