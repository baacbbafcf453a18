"""Watch a GAN train: snapshots recorded during `fit` by a callback, and a widget that scrubs through them.

    snaps = GANSnapshots(every=50)                                   # a callback for fit
    snaps.capture(model, 0)                                          # the untrained state, step 0
    fit(model, loader, optimizers=..., step_fn=..., callbacks=[snaps])
    gan_training_explorer({"non-saturating": snaps}, real=x)         # slider over the snapshots

Each snapshot holds G's samples for one fixed batch of latent vectors (so consecutive snapshots show the same
z moving) and, for an unconditional model of 2D points, D's output on a grid over the plane: its probability
sigmoid(D(x)) that x is real, or for a WGAN critic its raw score. `load_or_train_with_snapshots` keeps the
snapshots beside the cached weights, so a notebook that loads a trained model still has its history to show.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..checkpoints import checkpoint_path, load_or_train
from ..models.gan import discriminator_surface
from ..train import History
from .plots import image_grid, image_view, to_png

__all__ = [
    "Snapshot",
    "GANSnapshots",
    "load_or_train_with_snapshots",
    "plot_snapshots",
    "GANTrainingExplorer",
    "gan_training_explorer",
]


@dataclass
class Snapshot:
    """The state of a GAN at one training step.

    samples: G's output for the fixed latent batch, in data units: points (N, 2) or images (N, C, H, W) in [0, 1].
    surface: D on the grid of `GANSnapshots.xs`, `.ys`, (R, R), row i = ys[i]; None for images and conditional models.
    logs: the training step's logged values (d_loss, g_loss, ...).
    """

    step: int
    samples: Tensor
    surface: Tensor | None = None
    logs: dict[str, float] = field(default_factory=dict)


class GANSnapshots:
    """A `fit` callback that stores a `Snapshot` every `every` steps (call `capture(model, 0)` for step 0).

    num_samples: size of the fixed latent batch (drawn from a generator seeded with `seed` at every snapshot).
    labels: for a conditional model, the classes of the samples (n,); default 0, 1, ..., K - 1, 0, 1, ...
    xlim, ylim, resolution: the grid on which D is evaluated (2D models only).
    """

    def __init__(
        self,
        every: int = 50,
        num_samples: int = 512,
        *,
        labels: Tensor | None = None,
        xlim: tuple[float, float] = (-3.0, 3.0),
        ylim: tuple[float, float] = (-3.0, 3.0),
        resolution: int = 64,
        seed: int = 0,
    ):
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.every, self.num_samples, self.labels, self.seed = every, num_samples, labels, seed
        self.xlim, self.ylim, self.resolution = tuple(xlim), tuple(ylim), resolution
        self.xs = torch.linspace(xlim[0], xlim[1], resolution)
        self.ys = torch.linspace(ylim[0], ylim[1], resolution)
        self.probability = True  # what the surfaces hold: D's probability (True) or a critic's raw score
        self.snapshots: list[Snapshot] = []

    # -- recording
    def __call__(self, model: nn.Module, step: int, logs: dict) -> None:
        if step % self.every == 0:
            self.capture(model, step, logs)

    @torch.no_grad()
    def capture(self, model: nn.Module, step: int, logs: dict | None = None) -> Snapshot:
        """Record `model` (a `gmlib.models.gan.GAN`) now; the model's train/eval mode is restored afterwards."""
        was_training = model.training
        model.eval()  # batch norm in G must not use (or update) batch statistics while we look
        try:
            cfg = model.config
            samples = (
                model.sample(self.num_samples, y=self.labels, generator=torch.Generator().manual_seed(self.seed))
                .detach()
                .float()
                .cpu()
            )
            surface = None
            if cfg.data == "2d" and cfg.data_dim == 2 and not cfg.num_classes:
                self.probability = cfg.loss != "wgan-gp"
                _, _, surface = discriminator_surface(
                    model, self.xlim, self.ylim, self.resolution, probability=self.probability
                )
                surface = surface.float()
        finally:
            model.train(was_training)
        snap = Snapshot(int(step), samples, surface, {k: float(v) for k, v in (logs or {}).items()})
        self.snapshots.append(snap)
        return snap

    # -- access
    def __len__(self) -> int:
        return len(self.snapshots)

    def __getitem__(self, i: int) -> Snapshot:
        return self.snapshots[i]

    @property
    def steps(self) -> list[int]:
        return [s.step for s in self.snapshots]

    def clear(self) -> None:
        self.snapshots.clear()

    # -- persistence (plain tensors, numbers and strings: loads with weights_only=True)
    def state_dict(self) -> dict:
        return {
            "xlim": list(self.xlim),
            "ylim": list(self.ylim),
            "resolution": self.resolution,
            "probability": self.probability,
            "snapshots": [
                {"step": s.step, "samples": s.samples, "surface": s.surface, "logs": dict(s.logs)} for s in self.snapshots
            ],
        }

    def load_state_dict(self, state: dict) -> None:
        self.xlim, self.ylim = tuple(state["xlim"]), tuple(state["ylim"])
        self.resolution, self.probability = int(state["resolution"]), bool(state["probability"])
        self.xs = torch.linspace(self.xlim[0], self.xlim[1], self.resolution)
        self.ys = torch.linspace(self.ylim[0], self.ylim[1], self.resolution)
        self.snapshots = [Snapshot(int(s["step"]), s["samples"], s["surface"], dict(s["logs"])) for s in state["snapshots"]]

    def save(self, path: str | Path) -> None:
        torch.save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def load_or_train_with_snapshots(
    name: str,
    model: nn.Module,
    train: Callable[[nn.Module], History | None],
    snapshots: GANSnapshots,
    *,
    config=None,
    data_key=None,
    retrain: bool = False,
    fast: bool | None = None,
) -> tuple[nn.Module, History | None]:
    """`load_or_train` that also keeps `snapshots` (filled by `train` through the callback) beside the weights.

    Loads both when both are cached; otherwise clears `snapshots`, trains, and saves both. Returns
    `(model, history)` as `load_or_train` does.
    """
    path = checkpoint_path(name, model, config=config, data_key=data_key, fast=fast)
    side = path.with_name(path.stem + "-snapshots.pt")
    cached = path.exists() and side.exists() and not retrain
    if cached:
        try:
            snapshots.load(side)
        except Exception as err:  # a damaged snapshot file means: train again, never fail
            print(f"load_or_train_with_snapshots: {side.name} unreadable ({type(err).__name__}); retraining")
            cached = False
    if not cached:
        snapshots.clear()
    model, history = load_or_train(name, model, train, config=config, data_key=data_key, retrain=not cached, fast=fast)
    if not cached:
        snapshots.save(side)
    return model, history


# ---------------------------------------------------------------------------------------------- drawing
def _draw_2d(ax, snaps: GANSnapshots, snap: Snapshot, real: Tensor | None, max_points: int = 1000):
    """D's surface (if recorded), the real data in grey and G's samples in orange, on one axis."""
    image = None
    if snap.surface is not None:
        values = snap.surface.numpy()
        extent = (*snaps.xlim, *snaps.ylim)
        if snaps.probability:
            image = ax.imshow(values, origin="lower", extent=extent, cmap="RdBu", vmin=0.0, vmax=1.0, aspect="equal")
            ax.contour(snaps.xs.numpy(), snaps.ys.numpy(), values, levels=[0.5], colors="k", linewidths=0.8)
        else:  # a critic's score has no fixed scale: centre the colours on its median
            mid = float(np.median(values))
            span = float(np.abs(values - mid).max()) or 1.0
            image = ax.imshow(
                values, origin="lower", extent=extent, cmap="RdBu", vmin=mid - span, vmax=mid + span, aspect="equal"
            )
    if real is not None:
        r = real[:max_points].numpy()
        ax.scatter(r[:, 0], r[:, 1], s=2, c="0.35", alpha=0.5, linewidths=0)
    s = snap.samples[:max_points].numpy()
    ax.scatter(s[:, 0], s[:, 1], s=3, c="tab:orange", alpha=0.8, linewidths=0)
    ax.set_xlim(*snaps.xlim)
    ax.set_ylim(*snaps.ylim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def _is_2d(snap: Snapshot) -> bool:
    return snap.samples.dim() == 2 and snap.samples.shape[1] == 2


def plot_snapshots(
    snapshots: GANSnapshots,
    indices: Sequence[int] | None = None,
    *,
    real: Tensor | None = None,
    count: int = 6,
    nrow: int = 10,
    size: float = 2.2,
    title: str | None = None,
) -> Figure:
    """A row of panels, one per snapshot (`indices`, default `count` evenly spaced ones): for 2D models D's
    surface with real data (grey) and samples (orange); for images a grid of the first samples."""
    if not len(snapshots):
        raise ValueError("no snapshots recorded: pass the GANSnapshots object to fit(..., callbacks=[...])")
    if indices is None:
        indices = sorted(set(np.linspace(0, len(snapshots) - 1, min(count, len(snapshots))).round().astype(int)))
    fig = Figure(figsize=(size * len(indices), size + (0.5 if title else 0.3)))
    for k, i in enumerate(indices):
        snap = snapshots[i]
        ax = fig.add_subplot(1, len(indices), k + 1)
        if _is_2d(snap):
            _draw_2d(ax, snapshots, snap, real)
        else:
            grid = image_grid(snap.samples[: nrow * nrow], nrow=nrow)
            arr = grid[0] if grid.shape[0] == 1 else grid.permute(1, 2, 0)
            ax.imshow(arr.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_axis_off()
        ax.set_title(f"step {snap.step}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _figure_png(fig: Figure, dpi: int = 90) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- the widget
Describe = Callable[[Snapshot], str]


class GANTrainingExplorer(widgets.VBox):
    """Scrub through the snapshots of one or several GAN runs: a run selector, a snapshot slider (with a play
    button), the picture (D's surface and samples for 2D data, a sample grid for images) and a caption with the
    step, the logged losses and whatever `describe(snapshot)` returns (HTML)."""

    def __init__(
        self,
        runs: Mapping[str, GANSnapshots],
        *,
        real: Tensor | None = None,
        describe: Describe | None = None,
        nrow: int = 10,
        scale: int = 4,
        size: float = 4.5,
    ):
        runs = {k: v for k, v in runs.items()}
        if not runs or not all(len(s) for s in runs.values()):
            raise ValueError("every run needs at least one snapshot: pass GANSnapshots to fit(..., callbacks=[...])")
        self.runs, self.real, self.describe = runs, (None if real is None else real.detach().float().cpu()), describe
        self.nrow, self.scale, self.size = nrow, scale, size
        self._cache: dict[tuple[str, int], bytes] = {}
        names = list(runs)
        self.run_select = widgets.Dropdown(
            options=names, value=names[0], description="run", layout=widgets.Layout(display="" if len(names) > 1 else "none")
        )
        self.slider = widgets.IntSlider(
            value=0, min=0, max=len(runs[names[0]]) - 1, description="snapshot", continuous_update=True
        )
        self.play = widgets.Play(value=0, min=0, max=self.slider.max, interval=300, description="play")
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.image = image_view()
        self.caption = widgets.HTML()
        self.status = widgets.HTML()
        super().__init__([self.run_select, widgets.HBox([self.play, self.slider]), self.image, self.caption, self.status])
        self.slider.observe(lambda _: self.update(), names="value")
        self.run_select.observe(self._on_run, names="value")
        self.update()

    @property
    def current(self) -> Snapshot:
        return self.runs[self.run_select.value][self.slider.value]

    def render(self, run: str, index: int) -> bytes:
        """PNG bytes of snapshot `index` of `run` (cached)."""
        key = (run, index)
        if key not in self._cache:
            snaps = self.runs[run]
            snap = snaps[index]
            if _is_2d(snap):
                fig = Figure(figsize=(self.size + (0.9 if snap.surface is not None else 0), self.size))
                ax = fig.add_subplot()
                image = _draw_2d(ax, snaps, snap, self.real)
                if image is not None:
                    label = "D(x): probability that x is real" if snaps.probability else "critic score f(x)"
                    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)
                ax.set_title(f"{run}: step {snap.step}")
                fig.tight_layout()
                self._cache[key] = _figure_png(fig)
            else:
                grid = image_grid(snap.samples[: self.nrow * self.nrow], nrow=self.nrow)
                self._cache[key] = to_png(grid, scale=self.scale)
        return self._cache[key]

    def caption_html(self, run: str, index: int) -> str:
        snap = self.runs[run][index]
        parts = [f"<b>{run}</b>, snapshot {index + 1} of {len(self.runs[run])}: step {snap.step}"]
        logs = ", ".join(
            f"{k} {v:.3g}" for k, v in snap.logs.items() if k in ("d_loss", "g_loss", "d_acc", "gp", "wasserstein")
        )
        if logs:
            parts.append(logs)
        if self.describe is not None:
            parts.append(self.describe(snap))
        return "<br>".join(parts)

    def update(self) -> None:
        run, index = self.run_select.value, min(self.slider.value, len(self.runs[self.run_select.value]) - 1)
        try:
            self.image.value = self.render(run, index)
            self.caption.value = self.caption_html(run, index)
            self.status.value = ""
        except Exception as err:  # show the problem in the widget instead of losing it in a callback
            self.status.value = f"<b>explorer error:</b> {type(err).__name__}: {err}"
            raise

    def _on_run(self, _change) -> None:
        last = len(self.runs[self.run_select.value]) - 1
        if self.slider.value > last:
            self.slider.value = last  # fires update() for the old run's index range; the next line redraws
        self.slider.max = self.play.max = last
        self.update()


def gan_training_explorer(
    runs: GANSnapshots | Mapping[str, GANSnapshots],
    *,
    real: Tensor | None = None,
    describe: Describe | None = None,
    **kwargs,
) -> GANTrainingExplorer:
    """A `GANTrainingExplorer` over one run (a `GANSnapshots`) or several ({name: GANSnapshots}); `real` (N, 2)
    draws the training data under 2D samples; `describe(snapshot) -> str` adds a line to the caption."""
    if isinstance(runs, GANSnapshots):
        runs = {"run": runs}
    return GANTrainingExplorer(runs, real=real, describe=describe, **kwargs)
