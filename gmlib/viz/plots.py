"""Static plots: image grids, PNG encoding for widgets, loss curves.

Functions return a matplotlib `Figure` built without pyplot (no global figure state, nothing shown twice);
a notebook displays a returned figure. The library never calls `plt.show()`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import Tensor

from ..train import History

__all__ = ["image_grid", "image_view", "to_png", "show_images", "plot_history"]


def image_grid(images: Tensor, nrow: int = 8, padding: int = 1, pad_value: float = 1.0) -> Tensor:
    """Tile images (B, C, H, W) in [0, 1] into one image (C, rows*(H+p)+p, nrow*(W+p)+p)."""
    if images.dim() == 3:  # (B, H, W): one channel
        images = images[:, None]
    if images.dim() != 4:
        raise ValueError(f"image_grid expects (B, C, H, W) or (B, H, W), got shape {tuple(images.shape)}")
    images = images.detach().float().cpu().clamp(0, 1)
    b, c, h, w = images.shape
    ncol = max(1, min(nrow, b))
    nrows = (b + ncol - 1) // ncol
    grid = torch.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for i in range(b):
        r, k = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def to_png(image: Tensor, scale: int = 1) -> bytes:
    """PNG bytes of one image (C, H, W) or (H, W) in [0, 1], enlarged `scale` times (nearest neighbour)."""
    img = image.detach().float().cpu().clamp(0, 1)
    if img.dim() == 3:
        img = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
    arr = (img.numpy() * 255).round().astype(np.uint8)
    pil = Image.fromarray(arr)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()



def image_view():
    """An ipywidgets Image for `to_png` bytes that keeps the picture's aspect ratio: not stretched to the height
    of the row it sits in (flex boxes stretch their items by default), scaled to fit if it is squeezed."""
    import ipywidgets as widgets

    return widgets.Image(format="png", layout=widgets.Layout(object_fit="contain", align_self="flex-start"))

def show_images(images: Tensor, nrow: int = 8, title: str | None = None, size: float = 0.6) -> Figure:
    """A figure of images (B, C, H, W) in [0, 1] as a grid; `size` is inches per image."""
    grid = image_grid(images, nrow=nrow)
    ncol = max(1, min(nrow, images.shape[0]))
    nrows = (images.shape[0] + ncol - 1) // ncol
    fig = Figure(figsize=(max(2.0, size * ncol), max(1.5, size * nrows + (0.3 if title else 0))))
    ax = fig.add_subplot()
    arr = grid[0] if grid.shape[0] == 1 else grid.permute(1, 2, 0)
    ax.imshow(arr.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_history(history: History, keys: Sequence[str] | None = None, smooth: int = 10) -> Figure:
    """Per-step curves of the logged values (moving average over `smooth` steps), one panel per key."""
    keys = list(keys or history.steps)
    fig = Figure(figsize=(4 * max(1, len(keys)), 3))
    for i, k in enumerate(keys):
        ax = fig.add_subplot(1, max(1, len(keys)), i + 1)
        y = np.asarray(history.steps.get(k, []), dtype=float)
        if y.size:
            ax.plot(y, alpha=0.3, color="C0")
            if smooth > 1 and y.size >= smooth:
                ax.plot(np.arange(smooth - 1, y.size), np.convolve(y, np.ones(smooth) / smooth, "valid"), color="C0")
        ax.set_title(k)
        ax.set_xlabel("step")
    fig.tight_layout()
    return fig
