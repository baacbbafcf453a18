"""Masked convolutions for autoregressive image models (van den Oord et al., 2016, "Pixel Recurrent Neural
Networks", section 3.4).

Pixels are generated in raster order (row by row, left to right). A convolution whose kernel is multiplied by a
causal mask only sees pixels that come earlier in that order:

    k x k kernel, centre (k//2, k//2):
        rows above the centre                  1
        centre row, left of the centre         1
        the centre itself                      0 for mask "A", 1 for mask "B"
        centre row right of the centre, rows below   0

    mask A (k = 3)    mask B (k = 3)
        1 1 1             1 1 1
        1 0 0             1 1 0
        0 0 0             0 0 0

The first layer uses mask A, so the output at pixel i never sees pixel i itself; later layers use mask B, whose
centre connects feature i to feature i, which already depends only on pixels before i.

Choice: ONE channel group. Every (out, in) channel pair gets the same spatial mask, so the centre of mask A cuts
every channel of the current pixel. For a single-channel image (the course's digits and MNIST) this is exactly
the PixelCNN of the paper. For a C-channel image it models the channels of one pixel as conditionally
independent given the earlier pixels (still an exact, normalised likelihood), instead of the paper's R -> G -> B
channel groups.

Checking causality by gradients (`input_gradient_map`): the logits at output pixel i may depend on input pixel j
only if j comes before i, i.e. d logits_i / d x_j = 0 for every j >= i. Autograd measures exactly this; a map
of |gradient| over the input grid shows the receptive field, including the plain PixelCNN's blind spot.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["causal_mask", "MaskedConv2d", "MaskFn", "MASK_TYPES", "input_gradient_map"]

MASK_TYPES: tuple[str, ...] = ("A", "B")


def _pair(kernel_size: int | tuple[int, int]) -> tuple[int, int]:
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if kh < 1 or kw < 1 or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive (so it has a centre), got {kernel_size}")
    return kh, kw


def causal_mask(kernel_size: int | tuple[int, int], mask_type: str, in_channels: int = 1, out_channels: int = 1) -> Tensor:
    """The raster-order causal mask of a convolution kernel: (out_channels, in_channels, kh, kw) float32 of 0/1.

    1 above the centre row and left of the centre in the centre row; the centre is 0 for mask "A" (the first
    layer: a pixel may not see itself) and 1 for mask "B" (later layers). One channel group: every channel pair
    gets the same spatial mask (see the module docstring).
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    kh, kw = _pair(kernel_size)
    ch, cw = kh // 2, kw // 2
    mask = torch.zeros(kh, kw)
    mask[:ch, :] = 1.0  # every row above the centre
    mask[ch, :cw] = 1.0  # the centre row, left of the centre
    if mask_type == "B":
        mask[ch, cw] = 1.0
    return mask.expand(out_channels, in_channels, kh, kw).clone()


def input_gradient_map(fn: Callable[[Tensor], Tensor], x: Tensor, row: int, col: int) -> Tensor:
    """Which input pixels the outputs of `fn` at pixel (row, col) depend on: (H, W) float, >= 0.

    fn maps x (B, C, H, W) to an output whose last two axes are the same H x W grid ((B, K, H, W) or
    (B, L, C, H, W)). Returns the gradient of the sum of fn(x)[..., row, col] with respect to x, in absolute
    value, summed over the batch and the channels: entry (i, j) is 0 exactly when (generically) no output at
    (row, col) depends on input pixel (i, j). x itself is left untouched (a detached copy is differentiated).
    """
    x = x.detach().clone().requires_grad_(True)  # (B, C, H, W)
    out = fn(x)[..., row, col]  # (B, ...) the outputs at one pixel
    grad = torch.autograd.grad(out.sum(), x, allow_unused=True)[0] if out.requires_grad else None
    if grad is None:  # the output does not depend on x at all
        return torch.zeros(x.shape[-2:], dtype=x.dtype, device=x.device)
    return grad.abs().sum(dim=(0, 1))  # (H, W)


MaskFn = Callable[[int | tuple[int, int], str, int, int], Tensor]


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded convolution whose weight is multiplied by a causal mask (a buffer) on every forward.

    mask_fn(kernel_size, mask_type, in_channels, out_channels) -> (out, in, kh, kw) builds the mask; it defaults
    to `causal_mask` and is where a student's own mask plugs in. The masked weights get zero gradient, so they
    stay irrelevant for the whole of training.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: str = "B",
        *,
        bias: bool = True,
        mask_fn: MaskFn | None = None,
    ):
        kh, kw = _pair(kernel_size)
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        self.mask_type = mask_type
        mask = torch.as_tensor((mask_fn or causal_mask)(kernel_size, mask_type, in_channels, out_channels))
        expected = (out_channels, in_channels, kh, kw)
        if tuple(mask.shape) != expected:
            raise ValueError(f"the mask must have shape {expected} (out, in, kh, kw), got {tuple(mask.shape)}")
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:  # (B, in, H, W) -> (B, out, H, W)
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type!r}"
