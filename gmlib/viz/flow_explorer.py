"""Flow explorer (lesson 05): a normalizing flow's inverse pass, one layer at a time.

A flow with layers f_1, ..., f_K samples by x = f_1^{-1}( ... f_K^{-1}(z)), z ~ N(0, I). The slider picks j, the
number of inverse layers applied so far, and shows the state h_{K-j} = f_{K-j+1}^{-1}( ... f_K^{-1}(z)):

- 2D flows: the samples at that stage over a heat map of their exact density p_j (`stage_log_prob`: j = 0 is
  the base N(0, I), j = K the model), optionally with the data pushed forward through f_1, ..., f_{K-j} (the
  same space, so data and samples should overlap at every stage);
- image flows: a grid of the sampled images at that stage (and of data images pushed to it), squeezes undone.

Everything is computed when a value changes and written into `Image.value` / `HTML.value`, so the widget works,
and is tested, without a kernel.

    explorer = flow_explorer(flow, data=x_test)       # then move the slider, or change the temperature
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ..device import device_of
from ..models.flows import (
    ActNorm,
    AffineCoupling,
    Invertible1x1Conv,
    LogitTransform,
    RealNVP,
    Squeeze,
    density_grid,
    layer_outputs,
)
from .plots import image_grid, image_view, to_png

__all__ = ["FlowExplorer", "flow_explorer", "describe_layer"]


def describe_layer(layer: torch.nn.Module) -> str:
    """A short description of one flow layer, for the explorer's caption."""
    if isinstance(layer, AffineCoupling):
        mask = layer.mask
        if mask.dim() == 1:  # vectors: name the coordinates
            changed = [i for i, m in enumerate(mask.tolist()) if m == 0]
            kept = [i for i, m in enumerate(mask.tolist()) if m == 1]
            return (f"affine coupling: rescales and shifts x{changed} given x{kept} "
                    f"(log |det| = sum of s over x{changed})")
        kind = "checkerboard" if mask.dim() == 2 else "channel"
        return f"affine coupling with a {kind} mask: half of the values rescaled and shifted given the other half"
    if isinstance(layer, ActNorm):
        return "actnorm: a learned scale and shift per channel"
    if isinstance(layer, Invertible1x1Conv):
        return "invertible 1x1 convolution: a learned C x C linear map applied at every position"
    if isinstance(layer, Squeeze):
        return "squeeze: moves each 2x2 patch into 4 channels (a permutation, log |det| = 0; shown unsqueezed)"
    if isinstance(layer, LogitTransform):
        return "logit transform: maps [0, 1] to the real line (its inverse, a sigmoid, maps back)"
    return type(layer).__name__


def _limits(points: Sequence[Tensor], margin: float = 0.1) -> tuple[tuple[float, float], tuple[float, float]]:
    """A box holding the central 99% of every set of 2D points (n, 2), with a margin."""
    lo = torch.stack([p.quantile(0.005, dim=0) for p in points]).min(0).values
    hi = torch.stack([p.quantile(0.995, dim=0) for p in points]).max(0).values
    pad = margin * (hi - lo).clamp_min(1e-3)
    lo, hi = (lo - pad).tolist(), (hi + pad).tolist()
    return (lo[0], hi[0]), (lo[1], hi[1])


def _figure_png(fig: Figure, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class FlowExplorer(widgets.VBox):
    """A slider over the number of inverse layers applied, j = 0 (z) ... K (samples x); see the module docstring.

    flow: a `RealNVP` (any flow with `layers`, `sample(..., return_trajectory=True)` and `event_shape`).
    data: optional data points (N, *event_shape), pushed forward to each stage and drawn with the samples.
    num_samples, seed, temperature: the samples z ~ N(0, temperature^2 I) that are pushed through.
    xlim, ylim, resolution: the window and grid of the 2D density (default: a box around the samples).
    num_images, scale: how many image samples to show (image flows) and their enlargement.
    """

    def __init__(
        self,
        flow: RealNVP,
        *,
        data: Tensor | None = None,
        num_samples: int = 1000,
        seed: int = 0,
        temperature: float = 1.0,
        xlim: Sequence[float] | None = None,
        ylim: Sequence[float] | None = None,
        resolution: int = 100,
        num_images: int = 32,
        scale: int = 4,
    ):
        self.flow = flow.eval()
        self.num_layers = len(flow.layers)
        self.is_2d = tuple(flow.event_shape) == (2,)
        self.seed, self.resolution, self.scale = seed, resolution, scale
        self.num_samples = num_samples if self.is_2d else min(num_samples, num_images)
        self._densities: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

        self.layer = widgets.IntSlider(value=self.num_layers, min=0, max=self.num_layers, step=1,
                                       description="inverted", continuous_update=True)
        self.play = widgets.Play(value=self.num_layers, min=0, max=self.num_layers, step=1, interval=600)
        widgets.jslink((self.play, "value"), (self.layer, "value"))
        self.temperature = widgets.FloatSlider(value=temperature, min=0.1, max=1.5, step=0.05,
                                               description="temperature", continuous_update=False)
        self.show_density = widgets.Checkbox(value=True, description="density", indent=False,
                                             layout=widgets.Layout(display="" if self.is_2d else "none"))
        self.show_data = widgets.Checkbox(value=data is not None, description="data", indent=False,
                                          layout=widgets.Layout(display="" if data is not None else "none"))
        self.image = image_view()
        self.caption = widgets.HTML()
        self.status = widgets.HTML()
        super().__init__([widgets.HBox([self.play, self.layer, self.temperature]),
                          widgets.HBox([self.show_density, self.show_data]), self.image, self.caption, self.status])

        self._data_states = None
        if data is not None:
            data = data[:2000] if self.is_2d else data[:8]
            # layer_outputs: entry i = after f_1..f_i; stage j (j layers inverted) is entry K - j
            self._data_states = layer_outputs(flow, data.to(device_of(flow))).cpu()
        self._resample()
        if self.is_2d:
            # one window for every stage, from the samples (data pushed through a poorly fitted flow can fly off)
            auto_x, auto_y = _limits([self._trajectory[j].float() for j in range(self.num_layers + 1)])
            self.xlim = tuple(xlim) if xlim is not None else auto_x
            self.ylim = tuple(ylim) if ylim is not None else auto_y

        self.layer.observe(lambda _: self.update(), names="value")
        for w in (self.show_density, self.show_data):
            w.observe(lambda _: self.update(), names="value")
        self.temperature.observe(self._on_temperature, names="value")
        self.update()

    # -- state
    @torch.no_grad()
    def _resample(self) -> None:
        g = torch.Generator().manual_seed(self.seed)
        _, traj = self.flow.sample(self.num_samples, generator=g, return_trajectory=True,
                                   temperature=float(self.temperature.value))
        self._trajectory = traj.cpu()  # (K + 1, n, *event_shape)

    def states(self, j: int) -> Tensor:
        """The samples after j inverse layers, (n, *event_shape) (j = 0: z, j = K: x)."""
        return self._trajectory[j]

    def data_states(self, j: int) -> Tensor | None:
        """The data pushed forward through the first K - j layers (same space as `states(j)`), or None."""
        return None if self._data_states is None else self._data_states[self.num_layers - j]

    def density(self, j: int) -> tuple[Tensor, Tensor, Tensor]:
        """(xs, ys, density) of the stage-j distribution on the window (2D flows; cached per j)."""
        if j not in self._densities:
            self._densities[j] = density_grid(self.flow, self.xlim, self.ylim, self.resolution, num_inverted=j)
        return self._densities[j]

    # -- views
    def caption_text(self, j: int) -> str:
        k = self.num_layers
        if j == 0:
            head = f"<b>j = 0 of {k}</b>: z ~ N(0, T<sup>2</sup> I), nothing inverted yet"
        else:
            head = (f"<b>j = {j} of {k}</b> inverse layers applied; state h<sub>{k - j}</sub>; "
                    f"last inverted: layer {k - j + 1}, {describe_layer(self.flow.layers[k - j])}")
        if j == k:
            head += " (these are the model's samples)"
        if not self.is_2d and j < k:
            head += "<br>intermediate states are unbounded: each grid is rescaled to its own 1st-99th percentile"
        return head

    def _render_2d(self, j: int) -> bytes:
        fig = Figure(figsize=(5.2, 4.4))
        ax = fig.add_subplot()
        if self.show_density.value:
            xs, ys, dens = self.density(j)
            ax.imshow(dens.numpy(), origin="lower", extent=(*self.xlim, *self.ylim), cmap="viridis",
                      aspect="auto", interpolation="bilinear")
        pts = self.states(j)
        ax.scatter(pts[:, 0], pts[:, 1], s=3, c="white" if self.show_density.value else "C0", alpha=0.6,
                   linewidths=0, label="samples")
        data = self.data_states(j)
        if data is not None and self.show_data.value:
            ax.scatter(data[:, 0], data[:, 1], s=3, c="C1", alpha=0.6, linewidths=0, label="data, pushed forward")
            ax.legend(loc="upper right", fontsize=7, markerscale=3)
        ax.set_xlim(*self.xlim)
        ax.set_ylim(*self.ylim)
        ax.set_title(f"after {j} of {self.num_layers} inverse layers")
        fig.tight_layout()
        return _figure_png(fig)

    def _render_images(self, j: int) -> bytes:
        images = [self.states(j)]
        data = self.data_states(j)
        if data is not None and self.show_data.value:
            images.append(data)
        stacked = torch.cat(images).float()  # (n, C, H, W)
        if j == self.num_layers:
            shown = stacked.clamp(0, 1)
        else:  # unbounded values: rescale to the central 98% of this stage
            lo, hi = stacked.quantile(0.01), stacked.quantile(0.99)
            shown = ((stacked - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
        return to_png(image_grid(shown, nrow=8), scale=self.scale)

    def update(self) -> None:
        j = int(self.layer.value)
        try:
            self.image.value = self._render_2d(j) if self.is_2d else self._render_images(j)
            self.caption.value = self.caption_text(j)
            self.status.value = ""
        except Exception as err:  # show the problem in the widget instead of losing it in a callback
            self.status.value = f"<b>explorer error:</b> {type(err).__name__}: {err}"
            raise

    # -- callbacks
    def _on_temperature(self, _change) -> None:
        self._resample()
        self.update()


def flow_explorer(flow: RealNVP, *, data: Tensor | None = None, **kwargs) -> FlowExplorer:
    """A `FlowExplorer` for a trained flow; `data` (N, *event_shape) is drawn alongside, pushed to each stage."""
    return FlowExplorer(flow, data=data, **kwargs)
