"""Procedural sprites with known factors of variation, for disentanglement (lesson 10): like dSprites
(Matthey et al., 2017), but rendered here in torch, so there is no file to download.

Five factors, the columns of `factors` in that order (values from `sprite_factors()`):
    shape     3   "square", "ellipse", "heart"
    scale     6   0.5, 0.6, ..., 1.0: the sprite fits in a disc of radius 0.2 * scale (fraction of the image side)
    rotation  10  k * 2 pi / 10 radians (k * 36 degrees), k = 0..9, counter-clockwise as displayed: the same
                  values for every shape, as in dSprites. A square repeats every pi/2 and an ellipse every pi,
                  so for both k and k + 5 give the same image (5 distinct rotations); only the heart has 10.
                  A disentanglement metric must allow for that ambiguity.
    x         8   centre, horizontal, evenly spaced in [0.22, 0.78] (fraction of the width, left to right)
    y         8   centre, vertical, evenly spaced in [0.22, 0.78] (fraction of the height, top to bottom)
The full grid has 3 * 6 * 10 * 8 * 8 = 11,520 images: 47 MB of float32 at 32x32 (12 MB at 16x16), rendered
in about 0.15 s of one CPU core (some 80,000 images/s), so `load_sprites()` builds all of it in memory, no cache.

Rendering: each shape is an implicit function, a signed distance d(q) (negative inside) in shape units where
the sprite fits the unit disc around its centre; exact for the square and the heart (the heart of Inigo
Quilez's distance functions, shifted so that its centroid is the centre), a first-order approximation for the
ellipse (semi-axes 1 and 0.5). Every pixel centre p = ((j + 0.5) / S, (i + 0.5) / S) is mapped to shape units,
q = R(-rotation) (p - centre) / (0.2 * scale) with the vertical axis pointing up, and its value is
    anti-aliased  clamp(0.5 - d_pixels, 0, 1)   (d in pixels: a linear ramp one pixel wide across the edge)
    binary        1[d <= 0]
so values are in [0, 1], 1 inside (binary = anti-aliased >= 0.5). Only a window around each sprite (its disc
plus a pixel) is evaluated; everything else is 0. Areas at equal scale differ: square 1.21, ellipse 1.57, heart 2.08 (shape
units, i.e. times (0.2 * scale * S)^2 pixels).

    ds = load_sprites()                  # TensorDataset(images (11520, 1, 32, 32), factors (11520, 5) long)
    ds = load_sprites(2000, size=16)     # 2000 i.i.d. uniform factor draws, reproducible by seed
    img = render_sprite("heart", scale=1.0, rotation=0.3, x=0.5, y=0.5)   # (1, 32, 32)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = [
    "SPRITE_SHAPES",
    "SPRITE_FACTOR_NAMES",
    "sprite_factors",
    "render_sprite",
    "render_sprites",
    "load_sprites",
]

SPRITE_SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")
SPRITE_FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "rotation", "x", "y")
BASE_RADIUS = 0.2  # radius of the disc that holds a sprite at scale 1, as a fraction of the image side

_SQUARE_HALF_SIDE = 0.55
_ELLIPSE_AXES = (1.0, 0.5)
# Quilez's heart has its tip at the origin, width 1.2 and height 1.1; its centroid is (0, 0.6563) and the
# farthest point lies 0.6556 from it (both measured on a 2000^2 grid): shift and scale it into the unit disc.
_HEART_CENTROID_Y = 0.6563
_HEART_RADIUS = 0.6556
_CHUNK = 2048  # images rendered at once (bounds the memory of the intermediate (chunk, S, S) tensors)


def sprite_factors() -> dict[str, list]:
    """The factor names (in the column order of `factors`) and their values: shape names, scales, rotations
    in radians, x and y centres as fractions of the image side."""
    return {
        "shape": list(SPRITE_SHAPES),
        "scale": [0.5 + 0.1 * i for i in range(6)],
        "rotation": [2 * math.pi * k / 10 for k in range(10)],
        "x": torch.linspace(0.22, 0.78, 8).tolist(),
        "y": torch.linspace(0.22, 0.78, 8).tolist(),
    }


# -------------------------------------------------------------------------------- signed distances, shape units
def _sd_square(qx: Tensor, qy: Tensor) -> Tensor:
    dx, dy = qx.abs() - _SQUARE_HALF_SIDE, qy.abs() - _SQUARE_HALF_SIDE
    outside = torch.sqrt(dx.clamp_min(0) ** 2 + dy.clamp_min(0) ** 2)
    return outside + torch.maximum(dx, dy).clamp_max(0)


def _sd_ellipse(qx: Tensor, qy: Tensor) -> Tensor:
    a, b = _ELLIPSE_AXES
    k0 = torch.sqrt((qx / a) ** 2 + (qy / b) ** 2)
    k1 = torch.sqrt((qx / a**2) ** 2 + (qy / b**2) ** 2)
    approx = k0 * (k0 - 1.0) / k1.clamp_min(1e-12)  # f / |grad f| for f = k0 - 1 (scaled): exact on the boundary
    return torch.where(k0 < 0.5, torch.full_like(k0, -b / 2), approx)  # deep inside; avoids 0/0 at the centre


def _sd_heart(qx: Tensor, qy: Tensor) -> Tensor:
    px = (qx * _HEART_RADIUS).abs()
    py = qy * _HEART_RADIUS + _HEART_CENTROID_Y
    upper = torch.sqrt((px - 0.25) ** 2 + (py - 0.75) ** 2) - math.sqrt(2.0) / 4
    m = 0.5 * (px + py).clamp_min(0)
    lower = torch.sqrt(torch.minimum(px**2 + (py - 1.0) ** 2, (px - m) ** 2 + (py - m) ** 2)) * torch.sign(px - py)
    return torch.where(px + py > 1.0, upper, lower) / _HEART_RADIUS


_SDF = (_sd_square, _sd_ellipse, _sd_heart)


def _render_window(k: int, scale: Tensor, rotation: Tensor, x: Tensor, y: Tensor, size: int, antialias: bool) -> Tensor:
    """Sprites of ONE shape k: (n,) factor values -> (n, size, size). Only a square window around each sprite
    (its bounding disc plus a pixel) is evaluated, then pasted into a zero canvas padded by the window size,
    so sprites partly or wholly outside the image need no special case."""
    n, device = len(x), x.device
    radius = BASE_RADIUS * scale  # (n,) one shape unit, as a fraction of the side
    win = math.ceil(2 * float(radius.max()) * size) + 3  # window side in pixels
    offsets = torch.arange(win, device=device)  # (W,)
    col0 = torch.floor(x * size - win / 2).long().clamp(-win, size)  # (n,) first column of the window
    row0 = torch.floor(y * size - win / 2).long().clamp(-win, size)  # (n,) first row
    cols, rows = col0[:, None] + offsets, row0[:, None] + offsets  # (n, W) pixel indices, may lie outside
    r = radius[:, None, None]  # (n, 1, 1)
    dx = ((cols[:, None, :] + 0.5) / size - x[:, None, None]) / r  # (n, 1, W) pixel centres in shape units
    dy = (y[:, None, None] - (rows[:, :, None] + 0.5) / size) / r  # (n, W, 1) pointing up
    cos, sin = torch.cos(rotation)[:, None, None], torch.sin(rotation)[:, None, None]
    qx = cos * dx + sin * dy  # (n, W, W): R(-rotation) (dx, dy)
    qy = cos * dy - sin * dx
    d_pixels = _SDF[k](qx, qy) * (r * size)  # (n, W, W) signed distance in pixels
    img = (0.5 - d_pixels).clamp_(0.0, 1.0) if antialias else (d_pixels <= 0).float()
    canvas = torch.zeros(n, size + 2 * win, size + 2 * win, device=device)
    batch = torch.arange(n, device=device)[:, None, None]
    canvas[batch, rows[:, :, None] + win, cols[:, None, :] + win] = img
    return canvas[:, win : win + size, win : win + size]


def render_sprites(
    shape: Tensor, scale: Tensor, rotation: Tensor, x: Tensor, y: Tensor, size: int = 32, *, antialias: bool = True
) -> Tensor:
    """Render N sprites from factor VALUES (not indices): shape (N,) long in 0..2, scale (N,), rotation (N,)
    radians, x (N,), y (N,) centres in [0, 1]. Returns (N, 1, size, size) float32 in [0, 1] on x's device."""
    device = torch.as_tensor(x).device
    shape = torch.as_tensor(shape, device=device).long()
    scale, rotation, x, y = (torch.as_tensor(t, device=device, dtype=torch.float32) for t in (scale, rotation, x, y))
    out = torch.zeros(len(x), 1, size, size, device=device)
    for k in range(len(_SDF)):
        members = (shape == k).nonzero().flatten()  # (n_k,)
        for part in members.split(_CHUNK) if len(members) else ():
            out[part, 0] = _render_window(k, scale[part], rotation[part], x[part], y[part], size, antialias)
    if ((shape < 0) | (shape >= len(_SDF))).any():
        raise ValueError(f"shape indices must lie in 0..{len(_SDF) - 1}")
    return out


def render_sprite(
    shape: str | int, scale: float, rotation: float, x: float, y: float, size: int = 32, *, antialias: bool = True
) -> Tensor:
    """One sprite (1, size, size) in [0, 1]: shape a name in SPRITE_SHAPES or its index, scale (1 = the
    largest in the data set), rotation in radians (counter-clockwise), centre (x, y) as fractions of the side
    (x left to right, y top to bottom). Any values are allowed, not only the grid's."""
    k = SPRITE_SHAPES.index(shape) if isinstance(shape, str) else int(shape)
    if not 0 <= k < len(SPRITE_SHAPES):
        raise ValueError(f"shape must be one of {SPRITE_SHAPES} or an index 0..{len(SPRITE_SHAPES) - 1}, got {shape!r}")
    t = torch.tensor
    return render_sprites(t([k]), t([scale]), t([rotation]), t([x]), t([y]), size, antialias=antialias)[0]


def load_sprites(n: int | None = None, *, size: int = 32, seed: int = 0, antialias: bool = True) -> TensorDataset:
    """Sprites as `TensorDataset(images (N, 1, size, size) float32 in [0, 1], factors (N, 5) long)`.

    n=None: the full grid of 11,520 images, factors in lexicographic order (shape slowest, y fastest);
    `seed` is then unused. n: n images with factor indices drawn independently and uniformly (with
    replacement) from a `torch.Generator` seeded by `seed`. `factors[:, i]` indexes
    `sprite_factors()[SPRITE_FACTOR_NAMES[i]]`.
    """
    values = sprite_factors()
    counts = [len(values[name]) for name in SPRITE_FACTOR_NAMES]
    if n is None:
        factors = torch.cartesian_prod(*[torch.arange(c) for c in counts])  # (11520, 5)
    else:
        if n < 0:
            raise ValueError(f"n must be None or >= 0, got {n}")
        g = torch.Generator().manual_seed(seed)
        factors = torch.stack([torch.randint(0, c, (n,), generator=g) for c in counts], dim=1)  # (n, 5)
    scale, rotation, x, y = (torch.tensor(values[name])[factors[:, i + 1]]
                             for i, name in enumerate(SPRITE_FACTOR_NAMES[1:]))
    images = render_sprites(factors[:, 0], scale, rotation, x, y, size, antialias=antialias)
    return TensorDataset(images, factors)
