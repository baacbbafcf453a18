"""Explorer widgets. Each is built by a function that returns the widget; callbacks set widget values
(PNG bytes, HTML), so they work, and are tested, without a kernel.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import torch
from torch import Tensor, nn

from ..device import device_of
from .plots import image_grid, image_view, to_png

__all__ = ["LatentExplorer", "latent_explorer"]

Decode = Callable[..., Tensor]  # z (n, d) [, y (n,)] -> images (n, C, H, W) in [0, 1]


class LatentExplorer(widgets.VBox):
    """Three views of a decoder's latent space, in tabs:

    - sliders: one slider per latent dimension (the first `max_sliders`) drives the decoded image;
    - grid: decoded images over a 2D grid of two chosen dimensions, the others held at the sliders' values;
    - interpolation: decode the straight line between the encodings of two inputs (needs `encode`, `inputs`).
    """

    def __init__(
        self,
        decode: Decode,
        latent_dim: int,
        *,
        encode: Callable[..., Tensor] | None = None,
        inputs: Tensor | None = None,
        num_classes: int = 0,
        max_sliders: int = 8,
        span: float = 3.0,
        scale: int = 12,
        device: torch.device | str = "cpu",
    ):
        self.decode_fn, self.encode_fn = decode, encode
        self.latent_dim, self.num_classes, self.scale = latent_dim, num_classes, scale
        self.device = torch.device(device)
        self.inputs = inputs
        self.base = torch.zeros(latent_dim)
        n = min(latent_dim, max_sliders)
        self.sliders = [widgets.FloatSlider(value=0.0, min=-span, max=span, step=0.05, description=f"z[{i}]",
                                            continuous_update=True) for i in range(n)]
        self.reset_button = widgets.Button(description="reset to 0")
        self.class_select = widgets.Dropdown(options=list(range(max(num_classes, 1))), value=0, description="class",
                                             layout=widgets.Layout(display="" if num_classes else "none"))
        self.image = image_view()
        dims = list(range(latent_dim))
        self.dim_x = widgets.Dropdown(options=dims, value=0, description="x dim")
        self.dim_y = widgets.Dropdown(options=dims, value=min(1, latent_dim - 1), description="y dim")
        self.grid_size = widgets.IntSlider(value=9, min=3, max=15, description="grid")
        self.grid_span = widgets.FloatSlider(value=span, min=0.5, max=2 * span, step=0.25, description="span")
        self.grid_image = image_view()
        count = 0 if inputs is None else len(inputs)
        self.index_a = widgets.BoundedIntText(value=0, min=0, max=max(count - 1, 0), description="input A")
        self.index_b = widgets.BoundedIntText(value=min(1, max(count - 1, 0)), min=0, max=max(count - 1, 0),
                                              description="input B")
        self.interp_t = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t")
        self.interp_image = image_view()
        self.interp_strip = image_view()
        self.status = widgets.HTML()

        tabs = [widgets.VBox([widgets.HBox([widgets.VBox(self.sliders + [self.reset_button]), self.image])]),
                widgets.VBox([widgets.HBox([self.dim_x, self.dim_y]), widgets.HBox([self.grid_size, self.grid_span]),
                              self.grid_image])]
        titles = ["sliders", "2D grid"]
        if encode is not None and inputs is not None and count >= 2:
            tabs.append(widgets.VBox([widgets.HBox([self.index_a, self.index_b]), self.interp_t,
                                      widgets.HBox([self.interp_image, self.interp_strip])]))
            titles.append("interpolation")
        self.tabs = widgets.Tab(children=tabs, titles=titles)
        super().__init__([self.class_select, self.tabs, self.status])

        for s in self.sliders:
            s.observe(self._on_latent, names="value")
        self.reset_button.on_click(self._on_reset)
        self.class_select.observe(self._on_class, names="value")
        for w in (self.dim_x, self.dim_y, self.grid_size, self.grid_span):
            w.observe(lambda _: self.update_grid(), names="value")
        for w in (self.index_a, self.index_b, self.interp_t):
            w.observe(lambda _: self.update_interpolation(), names="value")
        self._refresh_all()

    # -- state
    def current_z(self) -> Tensor:
        """The latent vector the sliders describe, (d,)."""
        z = self.base.clone()
        for i, s in enumerate(self.sliders):
            z[i] = s.value
        return z

    def _labels(self, n: int) -> Tensor | None:
        return torch.full((n,), int(self.class_select.value), dtype=torch.long, device=self.device) \
            if self.num_classes else None

    @torch.no_grad()
    def _decode(self, z: Tensor) -> Tensor:
        z = z.to(self.device)
        y = self._labels(len(z))
        out = self.decode_fn(z, y) if y is not None else self.decode_fn(z)
        return out.detach().float().cpu()

    @torch.no_grad()
    def _encode(self, x: Tensor) -> Tensor:
        x = x.to(self.device)
        y = self._labels(len(x))
        z = self.encode_fn(x, y) if y is not None else self.encode_fn(x)
        return (z[0] if isinstance(z, tuple) else z).detach().float().cpu()

    # -- views
    def update_image(self) -> None:
        self.image.value = to_png(self._decode(self.current_z()[None])[0], scale=self.scale)

    def update_grid(self) -> None:
        k, span = self.grid_size.value, self.grid_span.value
        values = torch.linspace(-span, span, k)
        z = self.current_z().repeat(k * k, 1)  # (k*k, d)
        gy, gx = torch.meshgrid(values.flip(0), values, indexing="ij")
        z[:, self.dim_x.value] = gx.flatten()
        z[:, self.dim_y.value] = gy.flatten()
        self.grid_image.value = to_png(image_grid(self._decode(z), nrow=k), scale=max(2, self.scale // 3))

    def update_interpolation(self) -> None:
        if self.encode_fn is None or self.inputs is None or len(self.inputs) < 2:
            return
        za, zb = self._encode(self.inputs[[self.index_a.value, self.index_b.value]])
        t = self.interp_t.value
        self.interp_image.value = to_png(self._decode(((1 - t) * za + t * zb)[None])[0], scale=self.scale)
        ts = torch.linspace(0, 1, 8)[:, None]
        self.interp_strip.value = to_png(image_grid(self._decode((1 - ts) * za + ts * zb), nrow=8),
                                         scale=max(2, self.scale // 3))

    def _refresh_all(self) -> None:
        try:
            self.update_image()
            self.update_grid()
            self.update_interpolation()
            self.status.value = ""
        except Exception as err:  # show the problem in the widget instead of losing it in a callback
            self.status.value = f"<b>explorer error:</b> {type(err).__name__}: {err}"
            raise

    # -- callbacks
    def _on_latent(self, _change) -> None:
        self.update_image()
        self.update_grid()

    def _on_class(self, _change) -> None:
        self._refresh_all()

    def _on_reset(self, _button=None) -> None:
        for s in self.sliders:
            s.value = 0.0


def latent_explorer(model: nn.Module, *, inputs: Tensor | None = None, **kwargs) -> LatentExplorer:
    """A `LatentExplorer` for a model with `decode_mean(z[, y])` and `encode(x[, y]) -> (mu, logvar)`, such as
    `gmlib.models.vae.VAE`. `inputs` (n, C, H, W) are the examples offered for interpolation."""
    cfg = getattr(model, "config", None)
    model.eval()
    return LatentExplorer(
        model.decode_mean,
        int(cfg.latent_dim),
        encode=model.encode,
        inputs=inputs,
        num_classes=int(getattr(cfg, "num_classes", 0)),
        device=device_of(model),
        **kwargs,
    )
