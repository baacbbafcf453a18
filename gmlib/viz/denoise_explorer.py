"""Noise level vs reconstruction: how autoencoders (plain and denoising) cope with corrupted inputs.

    ex = denoise_explorer({"AE": ae, "DAE": dae}, x_test[:64])   # models map x_tilde (B, C, H, W) -> x_hat

One slider sets the noise level (the standard deviation sigma for Gaussian noise, the drop probability p for
masking). The explorer shows, for one image, the clean image, its corrupted copy x_tilde and each model's
reconstruction g(f(x_tilde)), each with its error against the CLEAN image; below, a curve of the mean error
over all given images against the noise level, one line per model plus the "do nothing" baseline (the noisy
input itself, clipped to [0, 1]), with a marker at the current level. Callbacks set `Image.value` and
`HTML.value`, so the widget works, and is tested, without a kernel.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..device import device_of
from ..models.ae import NOISE_KINDS, corrupt, reconstruction_error
from .plots import image_view, to_png

__all__ = ["DenoiseExplorer", "denoise_explorer", "squared_error"]

Reconstruct = Callable[[Tensor], Tensor]  # x_tilde (B, C, H, W) -> x_hat (B, C, H, W) in [0, 1]


def squared_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """||x_hat - x||^2 per example, summed over pixels: (B, ...), (B, ...) -> (B,)."""
    return reconstruction_error(x_hat, x, "mse", reduction="sum")


class DenoiseExplorer(widgets.VBox):
    """Clean image | corrupted input | each model's reconstruction, with errors, and error-vs-noise curves.

    models:     name -> callable x_tilde -> x_hat (an `Autoencoder` works: its forward is g(f(.))).
    images:     (N, C, H, W) clean images in [0, 1]; the slider `index` picks one, the curves average all N.
    kind:       "gaussian" or "masking" at the start (a toggle switches).
    corrupt_fn: corrupt(x, level, kind, generator=...) (default gmlib's `corrupt`; a student's works too).
    error_fn:   err(x_hat, x) -> (B,) (default `squared_error`, the sum over pixels of the squared error).
    levels:     the noise levels of the curves; the slider runs from 0 to max(levels).
    seed:       the noise seed at the start (an input box changes it): the same noise for every model.
    """

    def __init__(
        self,
        models: Mapping[str, Reconstruct],
        images: Tensor,
        *,
        kind: str = "gaussian",
        noise: float = 0.3,
        corrupt_fn: Callable[..., Tensor] = corrupt,
        error_fn: Callable[[Tensor, Tensor], Tensor] = squared_error,
        levels: Tensor | None = None,
        seed: int = 0,
        scale: int = 10,
        device: torch.device | str | None = None,
    ):
        if not models:
            raise ValueError("denoise_explorer needs at least one model")
        if images.dim() != 4 or len(images) == 0:
            raise ValueError(f"images must be (N, C, H, W) with N >= 1, got shape {tuple(images.shape)}")
        if kind not in NOISE_KINDS:
            raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
        self.models = dict(models)
        self.images = images.detach().float().cpu()
        self.corrupt_fn, self.error_fn, self.scale = corrupt_fn, error_fn, scale
        self.levels = (torch.linspace(0.0, 1.0, 11) if levels is None else torch.as_tensor(levels)).float()
        if device is None:
            first = next(iter(self.models.values()))
            device = device_of(first) if isinstance(first, nn.Module) else "cpu"
        self.device = torch.device(device)
        self._curves: dict[tuple[str, int], dict[str, Tensor]] = {}

        top = float(self.levels.max())
        self.noise = widgets.FloatSlider(value=min(noise, top), min=0.0, max=top, step=top / 40,
                                         description="noise", readout_format=".3f", continuous_update=True)
        self.kind = widgets.ToggleButtons(options=list(NOISE_KINDS), value=kind, description="kind")
        self.index = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="image")
        self.seed = widgets.IntText(value=seed, description="noise seed")
        names = ["clean x", "noisy input", *self.models]
        self.titles = {n: widgets.HTML(f"<b>{n}</b>") for n in names}
        self.panels = {n: image_view() for n in names}
        self.errors = {n: widgets.HTML() for n in names}
        self.curve = image_view()
        self.status = widgets.HTML()
        row = widgets.HBox([widgets.VBox([self.titles[n], self.panels[n], self.errors[n]]) for n in names])
        super().__init__([widgets.HBox([self.kind, self.noise]), widgets.HBox([self.index, self.seed]), row,
                          self.curve, self.status])

        self.noise.observe(lambda _: self._refresh(), names="value")
        self.kind.observe(lambda _: self._refresh(), names="value")
        self.index.observe(lambda _: self._refresh(curve=False), names="value")
        self.seed.observe(lambda _: self._refresh(), names="value")  # the curves use the seed too
        self._refresh()

    # -- computations
    def _corrupt(self, x: Tensor, level: float, kind: str, seed: int) -> Tensor:
        if level == 0:
            return x
        return self.corrupt_fn(x, level, kind, generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def reconstructions(self, x_tilde: Tensor) -> dict[str, Tensor]:
        """Each model's x_hat for x_tilde (B, C, H, W), on the CPU."""
        return {name: f(x_tilde.to(self.device)).detach().float().cpu() for name, f in self.models.items()}

    @torch.no_grad()
    def errors_at(self, level: float, kind: str | None = None, seed: int = 0) -> dict[str, Tensor]:
        """Per-image errors (N,) against the clean images at one noise level: "noisy input" (clipped to [0, 1])
        and each model."""
        kind = kind or self.kind.value
        x = self.images
        x_tilde = self._corrupt(x, level, kind, seed)
        out = {"noisy input": self.error_fn(x_tilde.clamp(0.0, 1.0), x)}
        for name, x_hat in self.reconstructions(x_tilde).items():
            out[name] = self.error_fn(x_hat, x)
        return out

    def curves(self, kind: str | None = None) -> dict[str, Tensor]:
        """Mean error over the images at each of `levels`, per model and for the noisy input: name -> (L,)."""
        kind = kind or self.kind.value
        key = (kind, int(self.seed.value))
        if key not in self._curves:
            rows = [self.errors_at(float(level), kind, seed=key[1]) for level in self.levels]
            self._curves[key] = {n: torch.stack([r[n].mean() for r in rows]) for n in rows[0]}
        return self._curves[key]

    # -- views
    def _render_curve(self) -> bytes:
        curves = self.curves()
        fig = Figure(figsize=(5.5, 3.0))
        ax = fig.add_subplot()
        for name, values in curves.items():
            style = {"color": "grey", "linestyle": "--"} if name == "noisy input" else {}
            ax.plot(self.levels.numpy(), values.numpy(), marker="o", markersize=3, label=name, **style)
        ax.axvline(self.noise.value, color="black", linewidth=0.8)
        ax.set_xlabel("noise standard deviation sigma" if self.kind.value == "gaussian" else "drop probability p")
        ax.set_ylabel("mean error against the clean x")
        ax.set_title(f"{len(self.images)} images, {self.kind.value} noise")
        ax.legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        return buf.getvalue()

    @torch.no_grad()
    def update_images(self) -> None:
        i = int(self.index.value)
        x = self.images[i : i + 1]  # (1, C, H, W)
        # the same noise for every image index at a given seed: draw for the whole set, pick one row
        x_tilde = self._corrupt(self.images, float(self.noise.value), self.kind.value, int(self.seed.value))[i : i + 1]
        shown = {"clean x": x, "noisy input": x_tilde, **self.reconstructions(x_tilde)}
        for name, img in shown.items():
            self.panels[name].value = to_png(img[0], scale=self.scale)
            if name == "clean x":
                self.errors[name].value = "target"
            else:
                err = float(self.error_fn(img.clamp(0.0, 1.0), x)[0])
                self.errors[name].value = f"error {err:.3f}"

    def update_curve(self) -> None:
        self.curve.value = self._render_curve()

    def _refresh(self, curve: bool = True) -> None:
        try:
            self.update_images()
            if curve:
                self.update_curve()
            self.status.value = ""
        except Exception as err:  # show the problem in the widget instead of losing it in a callback
            self.status.value = f"<b>explorer error:</b> {type(err).__name__}: {err}"
            raise


def denoise_explorer(models: Mapping[str, Reconstruct], images: Tensor, **kwargs) -> DenoiseExplorer:
    """A `DenoiseExplorer` over `images` (N, C, H, W) for models name -> x_tilde -> x_hat (e.g. `Autoencoder`s,
    put in eval mode here); keyword arguments as `DenoiseExplorer`."""
    for model in models.values():
        if isinstance(model, nn.Module):
            model.eval()
    return DenoiseExplorer(models, images, **kwargs)
