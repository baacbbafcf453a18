"""Inpainting explorer: hide part of an image, let a generative model fill it in, compare with the truth.

    ex = inpaint_explorer(fill, x_test[:32])      # fill(x, mask, generator) -> completed x, all (B, C, H, W)

Controls: which image, which mask (`gmlib.applications.MASK_KINDS`; the fraction slider sets how many pixels
the "random pixels" mask hides), the seed. Shown: the original, the input the model sees (hidden pixels drawn
mid-grey), `num_samples` completions (one call with the image repeated, so they differ only by the model's
randomness), and per completion the root-mean-square error on the HIDDEN pixels against the original, beside
the error of filling them with the mean of the known pixels. Callbacks set `Image.value` and `HTML.value`, so
the widget works, and is tested, without a kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import torch
from torch import Tensor

from ..applications import MASK_KINDS, make_mask
from .plots import image_grid, image_view, to_png

__all__ = ["InpaintExplorer", "inpaint_explorer", "hidden_rmse"]

Fill = Callable[[Tensor, Tensor, torch.Generator], Tensor]  # x (B, C, H, W), mask (B, C, H, W) 1 = known -> x


def hidden_rmse(x_filled: Tensor, x_true: Tensor, mask: Tensor) -> Tensor:
    """Root-mean-square error over the hidden pixels (mask = 0) of each image: (B, ...) x3 -> (B,)."""
    hidden = (1.0 - mask).expand_as(x_true).flatten(1)  # (B, D)
    sq = (x_filled - x_true).pow(2).flatten(1) * hidden
    return (sq.sum(1) / hidden.sum(1).clamp_min(1.0)).sqrt()


class InpaintExplorer(widgets.VBox):
    """Original | model input | completions, with the error on the hidden pixels.

    fill:        fill(x, mask, generator) -> x_filled, x (B, C, H, W) in [0, 1], mask 1 = known, result in [0, 1];
    images:      (N, C, H, W) in [0, 1];
    kind:        the mask at the start (one of MASK_KINDS); fraction: hidden share for "random pixels";
    num_samples: completions per image (the image is repeated; randomness from a generator seeded by `seed`).
    """

    def __init__(self, fill: Fill, images: Tensor, *, kind: str = "bottom half", fraction: float = 0.5,
                 num_samples: int = 4, seed: int = 0, scale: int = 10):
        if images.dim() != 4 or len(images) == 0:
            raise ValueError(f"images must be (N, C, H, W) with N >= 1, got shape {tuple(images.shape)}")
        if kind not in MASK_KINDS:
            raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        self.fill, self.images = fill, images.detach().float().cpu()
        self.num_samples, self.scale = num_samples, scale
        self.index = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image")
        self.kind = widgets.Dropdown(options=list(MASK_KINDS), value=kind, description="mask")
        self.fraction = widgets.FloatSlider(value=fraction, min=0.05, max=0.95, step=0.05, description="hidden",
                                            continuous_update=False)
        self.seed = widgets.IntText(value=seed, description="seed")
        self.original = image_view()
        self.masked = image_view()
        self.completions = image_view()
        self.errors = widgets.HTML()
        self.status = widgets.HTML()
        panels = [widgets.VBox([widgets.HTML(f"<b>{title}</b>"), img]) for title, img in
                  (("original", self.original), ("model input", self.masked), ("completions", self.completions))]
        super().__init__([widgets.HBox([self.index, self.kind]), widgets.HBox([self.fraction, self.seed]),
                          widgets.HBox(panels), self.errors, self.status])
        for w in (self.index, self.kind, self.fraction, self.seed):
            w.observe(lambda _: self.refresh(), names="value")
        self.refresh()

    def current_mask(self) -> Tensor:
        """The mask (1, C, H, W) for the current settings (1 = known)."""
        g = torch.Generator().manual_seed(int(self.seed.value))
        return make_mask(self.kind.value, (1, *self.images.shape[1:]), fraction=float(self.fraction.value),
                         generator=g)

    @torch.no_grad()
    def completions_now(self) -> tuple[Tensor, Tensor, Tensor]:
        """(x (1, C, H, W), mask (1, C, H, W), completions (num_samples, C, H, W)) for the current settings."""
        i = int(self.index.value)
        x, mask = self.images[i : i + 1], self.current_mask()
        xs = x.expand(self.num_samples, -1, -1, -1).contiguous()
        g = torch.Generator().manual_seed(int(self.seed.value))
        filled = self.fill(xs * mask, mask.expand_as(xs).contiguous(), g).detach().float().cpu()
        if filled.shape != xs.shape:
            raise ValueError(f"fill returned shape {tuple(filled.shape)}; expected {tuple(xs.shape)}")
        return x, mask, filled.clamp(0.0, 1.0)

    def refresh(self) -> None:
        try:
            self.fraction.disabled = self.kind.value != "random pixels"
            x, mask, filled = self.completions_now()
            self.original.value = to_png(x[0], scale=self.scale)
            self.masked.value = to_png((x * mask + 0.5 * (1 - mask))[0], scale=self.scale)
            self.completions.value = to_png(image_grid(filled, nrow=self.num_samples), scale=self.scale)
            known = mask.expand_as(x).bool()
            fill_value = x[known].mean() if known.any() else torch.tensor(0.0)
            baseline = hidden_rmse(torch.where(known, x, fill_value), x, mask)
            errs = hidden_rmse(filled, x.expand_as(filled), mask)
            self.errors.value = ("RMSE on the hidden pixels: " + ", ".join(f"{e:.3f}" for e in errs.tolist())
                                 + f" (filling with the mean of the known pixels: {float(baseline[0]):.3f})")
            self.status.value = ""
        except Exception as err:  # show the problem in the widget instead of losing it in a callback
            self.status.value = f"<b>explorer error:</b> {type(err).__name__}: {err}"
            raise


def inpaint_explorer(fill: Fill, images: Tensor, **kwargs) -> InpaintExplorer:
    """An `InpaintExplorer` over `images` (N, C, H, W) with a fill function; keyword arguments as the class."""
    return InpaintExplorer(fill, images, **kwargs)
