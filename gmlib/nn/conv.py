"""Convolutional building blocks shared by the image families: an encoder, a decoder and a residual block.

Every down stage is a 3x3 convolution with stride 2 and padding 1, which maps a side of n pixels to
ceil(n / 2): 8 -> 4 -> 2 -> 1, 28 -> 14 -> 7 -> 4, 32 -> 16 -> 8 -> 4. `conv_sizes` computes these sizes, and
the decoder retraces them exactly with 3x3 transposed convolutions (stride 2, padding 1) whose output
padding is 1 where the larger side is even and 0 where it is odd. So any image size works, square or not,
with no size hard-coded.

    enc = ConvEncoder((1, 28, 28), channels=(32, 64), out_dim=16)     # (B, 1, 28, 28) -> (B, 16)
    dec = ConvDecoder(16, channels=(64, 32), image_shape=(1, 28, 28))  # (B, 16) -> (B, 1, 28, 28) logits
    enc = ConvEncoder((1, 8, 8), channels=(64,), out_dim=None)         # (B, 1, 8, 8) -> (B, 64, 4, 4)
    dec = ConvDecoder(None, channels=(64,), image_shape=(1, 8, 8))     # (B, 64, 4, 4) -> (B, 1, 8, 8)

The decoder ends with a plain 3x3 convolution (no activation): its output is logits or an unconstrained
mean, the caller decides. `norm` is an optional factory `channels -> nn.Module` (e.g. `nn.BatchNorm2d` for a
DCGAN, `lambda c: nn.GroupNorm(8, c)`) placed after each hidden convolution; the default is no normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = ["conv_sizes", "ConvEncoder", "ConvDecoder", "ResidualBlock"]

NormFactory = Callable[[int], nn.Module]


def conv_sizes(size: int, num_downsamples: int) -> list[int]:
    """Side lengths after 0, 1, ..., num_downsamples stride-2 stages: [size, ceil(size/2), ...] (length n+1)."""
    if size < 1 or num_downsamples < 0:
        raise ValueError(f"need size >= 1 and num_downsamples >= 0, got {size}, {num_downsamples}")
    sizes = [size]
    for _ in range(num_downsamples):
        sizes.append((sizes[-1] + 1) // 2)  # (n + 2*1 - 3) // 2 + 1 = ceil(n / 2)
    return sizes


def _norm(norm: NormFactory | None, channels: int) -> nn.Module:
    return norm(channels) if norm is not None else nn.Identity()


class ConvEncoder(nn.Module):
    """Stride-2 conv stages, one per entry of `channels`, then (if `out_dim`) a linear map of the flat features.

    image_shape: (C, H, W) of the input; channels: output channels of each stage (at least one);
    out_dim: size of the output vector, or None to return the last feature map.
    Shapes: (B, C, H, W) -> (B, out_dim), or (B, channels[-1], h, w) with (h, w) = `feature_shape[1:]`.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int],
        out_dim: int | None,
        *,
        activation: type[nn.Module] = nn.SiLU,
        norm: NormFactory | None = None,
    ):
        super().__init__()
        if len(channels) == 0:
            raise ValueError("ConvEncoder needs at least one stage: channels must not be empty")
        c, h, w = image_shape
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c, c_out, 3, stride=2, padding=1), _norm(norm, c_out), activation()]
            c = c_out
        self.features = nn.Sequential(*layers)
        hs, ws = conv_sizes(h, len(channels)), conv_sizes(w, len(channels))
        self.feature_shape = (channels[-1], hs[-1], ws[-1])
        self.head = nn.Linear(math.prod(self.feature_shape), out_dim) if out_dim is not None else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.features(x)  # (B, c, h, w)
        return h if self.head is None else self.head(h.flatten(1))  # (B, out_dim)


class ConvDecoder(nn.Module):
    """The mirror of `ConvEncoder`: (if `in_dim`) a linear map to a small feature map, then one stride-2
    transposed-conv stage per entry of `channels`, then a 3x3 convolution to the image's channels.

    in_dim: size of the input vector, or None to take a feature map (B, channels[0], h, w) directly;
    channels: stage widths, widest first (e.g. the encoder's reversed); image_shape: (C, H, W) of the output.
    (h, w) are the encoder's feature sizes for `len(channels)` stages (`conv_sizes`), stored in `input_shape`.
    Shapes: (B, in_dim) or (B, channels[0], h, w) -> (B, C, H, W), no final activation.
    """

    def __init__(
        self,
        in_dim: int | None,
        channels: Sequence[int],
        image_shape: Sequence[int],
        *,
        activation: type[nn.Module] = nn.SiLU,
        norm: NormFactory | None = None,
    ):
        super().__init__()
        if len(channels) == 0:
            raise ValueError("ConvDecoder needs at least one stage: channels must not be empty")
        c_img, h, w = image_shape
        n = len(channels)
        hs, ws = conv_sizes(h, n)[::-1], conv_sizes(w, n)[::-1]  # smallest first, ends at (H, W)
        self.input_shape = (channels[0], hs[0], ws[0])
        if in_dim is not None:
            self.head = nn.Sequential(nn.Linear(in_dim, math.prod(self.input_shape)), activation())
        else:
            self.head = None
        layers: list[nn.Module] = []
        c = channels[0]
        for i in range(n):
            c_out = channels[i + 1] if i + 1 < n else channels[-1]
            # (s - 1) * 2 - 2 + 3 + p = 2s - 1 + p must equal the larger side; p = 1 for even sides, 0 for odd
            pad = (hs[i + 1] - (2 * hs[i] - 1), ws[i + 1] - (2 * ws[i] - 1))
            layers += [
                nn.ConvTranspose2d(c, c_out, 3, stride=2, padding=1, output_padding=pad),
                _norm(norm, c_out),
                activation(),
            ]
            c = c_out
        layers.append(nn.Conv2d(c, c_img, 3, padding=1))
        self.stages = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        if self.head is not None:
            z = self.head(z).view(-1, *self.input_shape)  # (B, c, h, w)
        return self.stages(z)  # (B, C, H, W)


class ResidualBlock(nn.Module):
    """x + conv1x1(act(conv3x3(act(x)))), the block of the VQ-VAE paper; keeps shape (B, C, H, W).

    hidden: channels of the inner 3x3 convolution (default: `channels`).
    """

    def __init__(
        self,
        channels: int,
        hidden: int | None = None,
        *,
        activation: type[nn.Module] = nn.ReLU,
        norm: NormFactory | None = None,
    ):
        super().__init__()
        hidden = hidden or channels
        self.block = nn.Sequential(
            _norm(norm, channels),
            activation(),
            nn.Conv2d(channels, hidden, 3, padding=1),
            _norm(norm, hidden),
            activation(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)
