"""Scrub through the states of any iterative sampler, one step at a time.

A sampler chain is given as a trajectory tensor (T, B, ...): T states of B chains, the start first. Two kinds:

- images (T, B, C, H, W) or (T, B, H, W) in [0, 1] (Gibbs chains of an RBM, Langevin chains on images, a
  diffusion model's reverse process): the state at the chosen step is drawn as an image grid;
- 2D points (T, B, 2) (Langevin chains on a 2D energy): the state is a scatter plot, optionally over the
  contour plot of an energy (X, Y, E grids, e.g. from `gmlib.models.ebm.energy_grid`), with the recent path
  of a few chains drawn as trails.

    explorer = chain_explorer(trajectory, background=energy_grid(model), steps=range(0, 501, 5))
    explorer.step.value = 40          # what a slider move does: the picture and the caption update at once

Callbacks set `Image.value` (PNG bytes) and `HTML.value` directly, so the widget works, and is tested,
without a kernel. Figures are drawn with matplotlib's object API (no pyplot state, nothing shown twice).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .plots import image_grid, image_view, to_png

__all__ = ["ChainExplorer", "chain_explorer", "thin_trajectory", "trajectory_kind"]

Background = tuple[Tensor, Tensor, Tensor]  # X, Y, E: (R, R) grids, indexed [row = y, column = x]


def trajectory_kind(trajectory: Tensor) -> str:
    """"points" for (T, B, 2), "images" for (T, B, H, W) or (T, B, C, H, W); ValueError otherwise."""
    if not isinstance(trajectory, Tensor):
        raise TypeError(f"trajectory must be a torch.Tensor (T, B, ...), got {type(trajectory).__name__}")
    if trajectory.dim() == 3 and trajectory.shape[-1] == 2:
        return "points"
    if trajectory.dim() in (4, 5):
        return "images"
    raise ValueError(f"trajectory must be (T, B, 2) points or (T, B, [C,] H, W) images, got shape "
                     f"{tuple(trajectory.shape)}")


def thin_trajectory(trajectory: Tensor, max_frames: int, steps: Sequence[int] | None = None
                    ) -> tuple[Tensor, list[int]]:
    """At most `max_frames` evenly spaced states of (T, B, ...), always keeping the first and the last; returns
    (states (T', B, ...), their step numbers). `steps` gives the step number of each of the T states
    (default 0..T-1)."""
    t = trajectory.shape[0]
    labels = list(range(t)) if steps is None else [int(s) for s in steps]
    if len(labels) != t:
        raise ValueError(f"steps has {len(labels)} entries for a trajectory of {t} states")
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2, got {max_frames}")
    if t <= max_frames:
        return trajectory, labels
    idx = torch.linspace(0, t - 1, max_frames).round().long().unique()  # sorted, first and last included
    return trajectory[idx], [labels[i] for i in idx.tolist()]


class ChainExplorer(widgets.VBox):
    """A step slider (with a play button) over a trajectory (T, B, ...) and a picture of the state at that step.

    trajectory: (T, B, 2) points or (T, B, [C,] H, W) images in [0, 1]; kept on the CPU as float32.
    steps:      the sampler step of each of the T states (default 0..T-1), shown in the caption.
    background: points only: (X, Y, E) grids drawn as filled contours under the scatter (low energy dark).
    energy_fn:  points only: E (n, 2) -> (n,); the caption then reports the chains' mean energy at the step.
    xlim, ylim: points only: fixed axes (default: the background's extent, else the 1st-99th percentile range
                of all states, padded).
    trail:      points only: number of past steps drawn as a path for the first `num_trails` chains (0: none).
    nrow, scale, max_images: images only: grid columns, pixel enlargement, and how many chains to show.
    """

    def __init__(
        self,
        trajectory: Tensor,
        *,
        steps: Sequence[int] | None = None,
        background: Background | None = None,
        energy_fn: Callable[[Tensor], Tensor] | None = None,
        xlim: tuple[float, float] | None = None,
        ylim: tuple[float, float] | None = None,
        trail: int = 0,
        num_trails: int = 8,
        nrow: int = 8,
        scale: int = 4,
        max_images: int = 64,
        title: str = "",
        size: float = 4.5,
    ):
        self.kind = trajectory_kind(trajectory)
        self.trajectory = trajectory.detach().float().cpu()  # (T, B, ...)
        t = self.trajectory.shape[0]
        self.steps = list(range(t)) if steps is None else [int(s) for s in steps]
        if len(self.steps) != t:
            raise ValueError(f"steps has {len(self.steps)} entries for a trajectory of {t} states")
        if self.kind == "images" and self.trajectory.dim() == 4:
            self.trajectory = self.trajectory[:, :, None]  # (T, B, 1, H, W)
        self.background, self.energy_fn, self.title, self.size = background, energy_fn, title, size
        self.nrow, self.scale, self.max_images, self.num_trails = nrow, scale, max_images, num_trails
        if self.kind == "points":
            self.xlim, self.ylim = self._limits(xlim, ylim)

        self.step = widgets.IntSlider(value=0, min=0, max=t - 1, description="step", continuous_update=True,
                                      layout=widgets.Layout(width="420px"))
        self.play = widgets.Play(value=0, min=0, max=t - 1, interval=150, description="play")
        widgets.jslink((self.play, "value"), (self.step, "value"))  # the browser moves the slider while playing
        self.trail = widgets.IntSlider(value=trail, min=0, max=max(t - 1, 1), description="trail",
                                       layout=widgets.Layout(display="" if self.kind == "points" else "none"))
        self.image = image_view()
        self.caption = widgets.HTML()
        self.status = widgets.HTML()
        super().__init__([widgets.HBox([self.play, self.step]), self.trail, self.caption, self.image, self.status])
        self.step.observe(lambda _: self.update(), names="value")
        self.trail.observe(lambda _: self.update(), names="value")
        self.update()

    # -- state
    def state(self, index: int | None = None) -> Tensor:
        """The state (B, ...) at trajectory index `index` (default: the slider's)."""
        return self.trajectory[self.step.value if index is None else index]

    def _limits(self, xlim, ylim) -> tuple[tuple[float, float], tuple[float, float]]:
        if self.background is not None:
            X, Y, _ = self.background
            bx, by = (float(X.min()), float(X.max())), (float(Y.min()), float(Y.max()))
        else:
            pts = self.trajectory.reshape(-1, 2)
            lo, hi = torch.quantile(pts[: 200_000], torch.tensor([0.01, 0.99]), dim=0)  # (2,), (2,)
            pad = 0.1 * (hi - lo) + 1e-3
            bx = (float(lo[0] - pad[0]), float(hi[0] + pad[0]))
            by = (float(lo[1] - pad[1]), float(hi[1] + pad[1]))
        return (xlim or bx), (ylim or by)

    # -- drawing
    def _caption(self, index: int) -> str:
        text = f"<b>step {self.steps[index]}</b> (state {index + 1} of {len(self.steps)})"
        if self.title:
            text = f"{self.title}: " + text
        if self.kind == "points" and self.energy_fn is not None:
            with torch.no_grad():
                e = self.energy_fn(self.state(index)).float()
            text += f"; mean energy of the {e.numel()} chains {e.mean().item():.3f}"
        return text

    def render(self, index: int | None = None) -> bytes:
        """PNG bytes of the state at `index` (default: the slider's)."""
        index = self.step.value if index is None else index
        if self.kind == "images":
            shown = self.trajectory[index, : self.max_images]  # (n, C, H, W)
            return to_png(image_grid(shown, nrow=self.nrow, pad_value=0.5), scale=self.scale)  # grey gaps
        return self._render_points(index)

    def _render_points(self, index: int) -> bytes:
        fig = Figure(figsize=(self.size, self.size), dpi=90)
        ax = fig.add_subplot()
        if self.background is not None:
            X, Y, E = (t.detach().float().cpu().numpy() for t in self.background)
            ax.contourf(X, Y, E, levels=30, cmap="viridis")
        x = self.state(index)  # (B, 2)
        n_trail = self.trail.value
        if n_trail > 0 and index > 0:
            path = self.trajectory[max(0, index - n_trail): index + 1, : self.num_trails]  # (L, k, 2)
            for k in range(path.shape[1]):
                ax.plot(path[:, k, 0].numpy(), path[:, k, 1].numpy(), color="white", lw=0.8, alpha=0.7)
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=9, color="#ff2020", alpha=0.85, edgecolors="white",
                   linewidths=0.3)
        ax.set_xlim(*self.xlim)
        ax.set_ylim(*self.ylim)
        ax.set_aspect("equal")
        ax.set_title(f"step {self.steps[index]}")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def update(self) -> None:
        """Redraw the picture and the caption for the slider's step."""
        try:
            index = self.step.value
            self.image.value = self.render(index)
            self.caption.value = self._caption(index)
            self.status.value = ""
        except Exception as err:  # show the problem in the widget instead of losing it in a callback
            self.status.value = f"<b>explorer error:</b> {type(err).__name__}: {err}"
            raise


def chain_explorer(trajectory: Tensor, *, max_frames: int = 201, steps: Sequence[int] | None = None,
                   **kwargs) -> ChainExplorer:
    """A `ChainExplorer` over at most `max_frames` evenly spaced states of `trajectory` (T, B, ...) (first and
    last kept; the caption names the true step numbers). Other arguments as for `ChainExplorer`."""
    states, labels = thin_trajectory(trajectory, max_frames, steps)
    return ChainExplorer(states, steps=labels, **kwargs)
