"""The diffusion-step explorer: the forward (noising) process and a reverse (sampling) trajectory, step by step.

    explorer = diffusion_explorer(model, inputs=x_test[:16])     # a gmlib.models.ddpm.DDPM, images or 2D points

Two tabs:
- forward: a slider over t in [0, T) shows x_t ~ q(x_t | x0) for a chosen input (one eps for every t, so the
  frames fade smoothly from the data to noise), with alpha_bar_t and the signal-to-noise ratio;
- reverse: a sampler (DDPM or DDIM), its number of steps, a seed (and, for a class-conditional model, a class
  and a guidance weight) define one sampling run; a slider over its steps shows the current state x_t and the
  model's predicted x0 at that step for a few samples.
For 2D models the "image" is a scatter plot of a whole point cloud (inputs: the data, drawn in grey).

Callbacks set `Image.value` (PNG bytes) and `HTML.value`, so the widget works, and is tested, without a kernel.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from .plots import image_grid, image_view, to_png

__all__ = ["DiffusionExplorer", "diffusion_explorer", "scatter_png"]


def scatter_png(clouds: Sequence[tuple[Tensor, str]], *, lim: float = 4.0, size: float = 3.2,
                title: str | None = None) -> bytes:
    """PNG bytes of a scatter plot of point clouds [(points (n, 2), colour), ...] in [-lim, lim]^2."""
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    for pts, colour in clouds:
        p = pts.detach().float().cpu()
        ax.scatter(p[:, 0], p[:, 1], s=3, c=colour, alpha=0.6, linewidths=0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


class DiffusionExplorer(widgets.VBox):
    """Forward noising and reverse sampling of a `DDPM`, scrubbed step by step (see the module docstring).

    model:        a `gmlib.models.ddpm.DDPM` (kind "image" or "2d"); its sampling uses whatever step functions it
                  was built with (a student's `ddpm_step` / `ddim_step` / `guided_eps`)
    inputs:       images (n, C, H, W) in [0, 1] to noise (kind "image"), or data points (n, 2) (kind "2d")
    num_samples:  samples in one reverse run (images; 2D models draw `num_points`)
    step_options: the numbers of sampling steps offered (each at most T)
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Tensor,
        *,
        num_samples: int = 8,
        num_points: int = 1000,
        step_options: Sequence[int] = (10, 20, 50, 100, 250, 1000),
        scale: int = 12,
        lim: float | None = None,
    ):
        self.model = model.eval()
        self.kind = model.config.kind
        self.T = int(model.config.T)
        self.num_classes = int(getattr(model.config, "num_classes", 0))
        self.inputs = inputs.detach().cpu()
        self.num_samples = num_samples if self.kind == "image" else num_points
        self.scale = scale
        if lim is None and self.kind == "2d":
            lim = max(3.0, float(self.inputs.abs().max()) * 1.15)
        self.lim = lim or 4.0
        options = sorted({int(s) for s in step_options if 1 <= int(s) <= self.T}) or [self.T]
        self.trajectory: dict[str, Tensor] | None = None

        # forward tab
        self.t_slider = widgets.IntSlider(value=self.T // 4, min=0, max=self.T - 1, description="t",
                                          continuous_update=True, layout=widgets.Layout(width="420px"))
        self.input_index = widgets.BoundedIntText(value=0, min=0, max=max(len(self.inputs) - 1, 0),
                                                  description="input", layout=widgets.Layout(
                                                      display="" if self.kind == "image" else "none"))
        self.noise_seed = widgets.BoundedIntText(value=0, min=0, max=10**6, description="noise seed")
        self.forward_image = image_view()
        self.forward_strip = image_view()
        self.forward_info = widgets.HTML()

        # reverse tab
        self.sampler = widgets.ToggleButtons(options=["ddpm", "ddim"], value="ddpm", description="sampler")
        default_steps = 50 if 50 in options else options[len(options) // 2]
        self.num_steps = widgets.Dropdown(options=options, value=default_steps, description="steps")
        self.sample_seed = widgets.BoundedIntText(value=0, min=0, max=10**6, description="seed")
        classes = [("none (unconditional)", -1)] + [(str(c), c) for c in range(self.num_classes)]
        self.label = widgets.Dropdown(options=classes, value=-1, description="class",
                                      layout=widgets.Layout(display="" if self.num_classes else "none"))
        self.guidance = widgets.FloatSlider(value=0.0, min=0.0, max=5.0, step=0.5, description="guidance w",
                                            layout=widgets.Layout(display="" if self.num_classes else "none"))
        self.step_slider = widgets.IntSlider(value=0, min=0, max=default_steps, description="step",
                                             continuous_update=True, layout=widgets.Layout(width="420px"))
        self.reverse_image = image_view()
        self.reverse_strip = image_view()
        self.reverse_info = widgets.HTML()
        self.status = widgets.HTML()

        forward = widgets.VBox([widgets.HBox([self.input_index, self.noise_seed]), self.t_slider,
                                widgets.HBox([self.forward_image, self.forward_strip]), self.forward_info])
        reverse = widgets.VBox([widgets.HBox([self.sampler, self.num_steps]),
                                widgets.HBox([self.sample_seed, self.label, self.guidance]),
                                self.step_slider, self.reverse_image, self.reverse_strip, self.reverse_info])
        self.tabs = widgets.Tab(children=[forward, reverse], titles=["forward (noising)", "reverse (sampling)"])
        super().__init__([self.tabs, self.status])

        for w in (self.t_slider, self.input_index, self.noise_seed):
            w.observe(lambda _: self._safely(self.update_forward), names="value")
        for w in (self.sampler, self.num_steps, self.sample_seed, self.label, self.guidance):
            w.observe(lambda _: self._safely(self.resample), names="value")
        self.step_slider.observe(lambda _: self._safely(self.update_reverse), names="value")
        self._safely(self.update_forward)
        self._safely(self.resample)

    # -- helpers
    def _safely(self, fn) -> None:
        try:
            fn()
            self.status.value = ""
        except Exception as err:  # show the problem in the widget instead of losing it in a callback
            self.status.value = f"<b>explorer error:</b> {type(err).__name__}: {err}"
            raise

    def _png(self, images: Tensor, nrow: int, scale: int | None = None) -> bytes:
        return to_png(image_grid(images, nrow=nrow), scale=scale or self.scale)

    def _forward_frames(self, ts: Sequence[int]) -> Tensor:
        """x_t for each t of ts (len(ts), n, ...) in data units: one input image, or every 2D input point."""
        x0 = self.inputs[self.input_index.value][None] if self.kind == "image" else self.inputs
        g = torch.Generator().manual_seed(int(self.noise_seed.value))
        return self.model.forward_trajectory(x0, list(ts), generator=g).cpu()

    # -- forward tab
    def update_forward(self) -> None:
        t = int(self.t_slider.value)
        ab = float(self.model.schedule.alpha_bar[t])
        frame = self._forward_frames([t])[0]  # (1, C, H, W) or (n, 2)
        strip_ts = torch.linspace(0, self.T - 1, 8).round().long().tolist()
        frames = self._forward_frames(strip_ts)
        if self.kind == "image":
            self.forward_image.value = to_png(frame[0], scale=self.scale * 2)
            self.forward_strip.value = self._png(frames[:, 0], nrow=len(strip_ts), scale=max(2, self.scale // 2))
        else:
            data = (self.inputs, "lightgrey")
            self.forward_image.value = scatter_png([data, (frame, "C0")], lim=self.lim, title=f"x_t at t = {t}")
            self.forward_strip.value = scatter_png([(frames[-1], "C0")], lim=self.lim, size=2.0,
                                                   title=f"t = {strip_ts[-1]}")
        snr = ab / (1.0 - ab)
        self.forward_info.value = (
            f"t = {t} of {self.T}: x_t = {math.sqrt(ab):.3f} x0 + {math.sqrt(1 - ab):.3f} eps; "
            f"alpha_bar_t = {ab:.4g}, SNR = alpha_bar / (1 - alpha_bar) = {snr:.3g} (log10 {math.log10(snr):.2f})"
            + ("<br>strip: t = " + ", ".join(map(str, strip_ts)) if self.kind == "image" else ""))

    # -- reverse tab
    def resample(self) -> None:
        """Run the sampler with the current controls and keep its trajectory; the step slider scrubs through it."""
        y = int(self.label.value) if self.num_classes and int(self.label.value) >= 0 else None
        w = float(self.guidance.value) if y is not None else 0.0
        steps = int(self.num_steps.value)
        g = torch.Generator().manual_seed(int(self.sample_seed.value))
        start = time.perf_counter()
        with torch.no_grad():
            _, traj = self.model.sample(self.num_samples, y=y, guidance_scale=w, sampler=self.sampler.value,
                                        num_steps=steps, generator=g, return_trajectory=True)
        self.seconds = time.perf_counter() - start
        self.trajectory = {k: v.cpu() for k, v in traj.items()}
        evals = steps * (2 if w != 0.0 else 1)
        self.run_info = (f"{self.sampler.value.upper()}, {steps} steps, {evals} network evaluations, "
                         f"{self.seconds:.2f} s for {self.num_samples} samples")
        value = int(round(self.step_slider.value / max(self.step_slider.max, 1) * steps))  # same fraction
        if steps >= self.step_slider.max:  # keep value <= max at every moment
            self.step_slider.max = steps
            self.step_slider.value = value
        else:
            self.step_slider.value = value
            self.step_slider.max = steps
        self.update_reverse()
        self.update_strip()

    def update_reverse(self) -> None:
        traj = self.trajectory
        if traj is None:
            return
        S = len(traj["t"])
        i = min(int(self.step_slider.value), S)
        x_t = traj["x_t"][i]  # the state before step i (i = S: the final sample)
        x0_pred = traj["x0_pred"][min(i, S - 1)]
        label = "x_T (noise)" if i == 0 else ("final sample" if i == S else f"state after {i} of {S} steps")
        t_now = int(traj["t"][i]) if i < S else None
        if self.kind == "image":
            k = min(self.num_samples, 8)
            self.reverse_image.value = self._png(torch.cat([x_t[:k], x0_pred[:k]]), nrow=k)
            rows = "top row: x_t; bottom row: the model's predicted x0 at this step"
        else:
            data = (self.inputs, "lightgrey")
            self.reverse_image.value = scatter_png([data, (x_t, "C0"), (x0_pred, "C1")], lim=self.lim,
                                                   title=label)
            rows = "blue: x_t; orange: the predicted x0 at this step; grey: the data"
        where = f"next timestep t = {t_now}" if t_now is not None else "t = 0 done"
        self.reverse_info.value = f"{label} ({where}). {rows}.<br>{self.run_info}"

    def update_strip(self) -> None:
        """The trajectory of the first sample (images) at up to 10 steps: x_t above, predicted x0 below."""
        traj = self.trajectory
        S = len(traj["t"])
        idx = sorted(set(torch.linspace(0, S, min(S + 1, 10)).round().long().tolist()))
        if self.kind == "image":
            top = traj["x_t"][idx, 0]  # (k, C, H, W)
            bottom = traj["x0_pred"][[min(i, S - 1) for i in idx], 0]
            self.reverse_strip.value = self._png(torch.cat([top, bottom]), nrow=len(idx),
                                                 scale=max(2, self.scale // 2))
        else:
            self.reverse_strip.value = scatter_png([(self.inputs, "lightgrey"), (traj["x_t"][-1], "C0")],
                                                   lim=self.lim, size=2.0, title="final samples")


def diffusion_explorer(model: nn.Module, *, inputs: Tensor, **kwargs) -> DiffusionExplorer:
    """A `DiffusionExplorer` for a `gmlib.models.ddpm.DDPM`: inputs are images (n, C, H, W) in [0, 1] or 2D
    points (n, 2) (see `DiffusionExplorer` for the options)."""
    return DiffusionExplorer(model, inputs, **kwargs)
