"""Capacity explorer (course lesson 00): how a density estimate changes as its capacity grows.

One family at a time (a histogram, a Gaussian kernel density estimate or a Gaussian mixture fitted by EM), a
slider over its capacity (ordered from least to most flexible: more bins, a smaller bandwidth, more
components), and three views: the fitted density p(x) on a grid, samples drawn from it beside the training
points, and the mean train and test log-likelihood (nats per point) at every capacity with the current one
marked. Training log-likelihood keeps rising with capacity; test log-likelihood rises, peaks, and falls once
the model starts to memorise its training points: overfitting.

    explorer = capacity_explorer(x_train, x_test)     # (N, 2) and (M, 2) points
    explorer.family.value = "gmm"; explorer.capacity.value = 16

Callbacks set `image.value` (PNG bytes) and `info.value` (HTML) directly, so the widget works, and is tested,
without a kernel. `density_grid` and `plot_density` are also used on their own by the lesson's static figures.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from ..models.density import GaussianMixture, GaussianMixtureConfig, HistogramDensity, KernelDensity
from .plots import image_view

__all__ = ["FAMILIES", "DEFAULT_CAPACITIES", "density_grid", "plot_density", "CapacityExplorer", "capacity_explorer"]

FAMILIES: tuple[str, ...] = ("histogram", "kde", "gmm")
DEFAULT_CAPACITIES: dict[str, tuple] = {
    "histogram": (2, 4, 6, 8, 12, 16, 24, 32, 48),  # bins per axis
    "kde": (1.0, 0.6, 0.4, 0.25, 0.15, 0.1, 0.06, 0.04, 0.025),  # bandwidth h: smaller is more flexible
    "gmm": (1, 2, 4, 6, 8, 12, 16, 24, 32),  # number of components K
}
_FAMILY_LABELS = {"histogram": "histogram", "kde": "KDE", "gmm": "Gaussian mixture (EM)"}
_CAPACITY_NAMES = {"histogram": "bins per axis", "kde": "bandwidth h", "gmm": "components K"}

LogProbFn = Callable[[Tensor], Tensor]


def density_grid(log_prob: LogProbFn, box: Sequence[float] = (-4.0, 4.0, -4.0, 4.0),
                 resolution: int = 100) -> tuple[Tensor, Tensor, Tensor]:
    """log p on a regular grid over box = (x_min, x_max, y_min, y_max): returns xs (R,), ys (R,), log_p (R, R)
    with log_p[i, j] = log p(xs[j], ys[i]) (row i is one value of the second coordinate)."""
    x0, x1, y0, y1 = (float(b) for b in box)
    xs = torch.linspace(x0, x1, resolution, dtype=torch.float64)
    ys = torch.linspace(y0, y1, resolution, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx.flatten(), gy.flatten()], dim=1)  # (R*R, 2)
    with torch.no_grad():
        log_p = log_prob(points).detach().double().cpu().reshape(resolution, resolution)
    return xs, ys, log_p


def plot_density(ax: Axes, log_prob: LogProbFn, box: Sequence[float] = (-4.0, 4.0, -4.0, 4.0), *,
                 resolution: int = 100, points: Tensor | None = None, title: str | None = None,
                 cmap: str = "magma") -> None:
    """Draw p(x) = exp(log_prob(x)) of a 2D density as an image on `ax`, optionally with `points` (n, 2) on top."""
    _, _, log_p = density_grid(log_prob, box, resolution)
    ax.imshow(log_p.exp().numpy(), origin="lower", extent=tuple(box), cmap=cmap, aspect="equal",
              interpolation="nearest")
    if points is not None:
        pts = points.detach().cpu().numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="white", alpha=0.5, linewidths=0)
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)


def _label(family: str, value) -> str:
    return {"histogram": f"{value} bins", "kde": f"h = {value:g}", "gmm": f"K = {value}"}[family]


class CapacityExplorer(widgets.VBox):
    """Density, samples and train/test log-likelihood of one density family as its capacity changes.

    x_train (N, 2), x_test (M, 2): points (float tensors). capacities: family -> the slider's values, ordered
    from least to most flexible (defaults: DEFAULT_CAPACITIES). box: (x_min, x_max, y_min, y_max) of the plots
    and of the histogram's bins. alphas: the histogram pseudo-counts offered (0: empty bins have density 0), alpha
    the one selected at the start.
    kde_fn, e_step_fn, m_step_fn: replacements for gmlib's pieces (a student's versions).
    Fitted models and the per-family score curves are cached, so moving back and forth is instant.
    """

    def __init__(
        self,
        x_train: Tensor,
        x_test: Tensor,
        *,
        families: Sequence[str] = FAMILIES,
        capacities: dict[str, Sequence] | None = None,
        box: Sequence[float] = (-4.0, 4.0, -4.0, 4.0),
        alphas: Sequence[float] = (0.0, 0.01, 0.1, 1.0),
        alpha: float = 0.1,
        num_samples: int = 500,
        resolution: int = 90,
        seed: int = 0,
        gmm_max_iter: int = 200,
        kde_fn: Callable | None = None,
        e_step_fn: Callable | None = None,
        m_step_fn: Callable | None = None,
    ):
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise ValueError(f"families must be a non-empty selection of {FAMILIES}, got {list(families)}")
        if x_train.dim() != 2 or x_train.shape[1] != 2 or x_test.dim() != 2 or x_test.shape[1] != 2:
            raise ValueError("x_train and x_test must be 2D point sets of shape (N, 2)")
        self.x_train = x_train.detach().double().cpu()
        self.x_test = x_test.detach().double().cpu()
        self.capacities = {f: tuple((capacities or {}).get(f, DEFAULT_CAPACITIES[f])) for f in families}
        self.box, self.num_samples, self.resolution, self.seed = tuple(box), num_samples, resolution, seed
        self.gmm_max_iter = gmm_max_iter
        self.kde_fn, self.e_step_fn, self.m_step_fn = kde_fn, e_step_fn, m_step_fn
        self._models: dict[tuple, object] = {}
        self._scores: dict[tuple, tuple[float, float]] = {}
        self._busy = False

        self.family = widgets.ToggleButtons(options=[(_FAMILY_LABELS[f], f) for f in families], value=families[0],
                                            description="model")
        self.capacity = widgets.SelectionSlider(options=self._options(families[0]), description="capacity",
                                                continuous_update=False, layout=widgets.Layout(width="480px"))
        self.capacity.value = self.capacities[families[0]][len(self.capacities[families[0]]) // 2]
        self.alpha = widgets.Dropdown(options=[(f"{a:g}", float(a)) for a in alphas], value=float(alpha),
                                      description="pseudo-count")
        self.image = image_view()
        self.info = widgets.HTML()
        self.status = widgets.HTML()
        super().__init__([self.family, widgets.HBox([self.capacity, self.alpha]), self.image, self.info, self.status])

        self.family.observe(self._on_family, names="value")
        self.capacity.observe(self._on_change, names="value")
        self.alpha.observe(self._on_change, names="value")
        self._sync_alpha_visibility()
        self.update()

    # -- models and scores
    def _options(self, family: str) -> list[tuple[str, object]]:
        return [(_label(family, v), v) for v in self.capacities[family]]

    def fitted(self, family: str, value, alpha: float = 0.0):
        """The model of `family` at capacity `value`, fitted to x_train (cached)."""
        key = (family, value, alpha if family == "histogram" else None)
        if key not in self._models:
            if family == "histogram":
                low, high = (self.box[0], self.box[2]), (self.box[1], self.box[3])
                model = HistogramDensity(int(value), low, high, alpha=alpha).fit(self.x_train)
            elif family == "kde":
                model = KernelDensity(float(value), kde_fn=self.kde_fn).fit(self.x_train)
            else:
                config = GaussianMixtureConfig(num_components=int(value), dim=2, max_iter=self.gmm_max_iter)
                model = GaussianMixture(config, e_step_fn=self.e_step_fn, m_step_fn=self.m_step_fn)
                model.fit_em(self.x_train, generator=torch.Generator().manual_seed(self.seed), fast=False)
            self._models[key] = model
        return self._models[key]

    def score(self, family: str, value, alpha: float = 0.0) -> tuple[float, float]:
        """Mean log p over x_train and over x_test, in nats per point (-inf when a test point has density 0)."""
        key = (family, value, alpha if family == "histogram" else None)
        if key not in self._scores:
            model = self.fitted(family, value, alpha)
            self._scores[key] = (float(model.log_prob(self.x_train).mean()), float(model.log_prob(self.x_test).mean()))
        return self._scores[key]

    def curve(self, family: str, alpha: float = 0.0) -> list[tuple[float, float]]:
        """(train, test) mean log-likelihood at every capacity of `family`, in slider order."""
        return [self.score(family, v, alpha) for v in self.capacities[family]]

    def num_parameters(self, family: str, value) -> int:
        """Numbers the fitted model stores: bin counts, the kept training points, or the mixture's parameters."""
        if family == "histogram":
            return int(value) ** 2 - 1
        if family == "kde":
            return self.x_train.numel()
        return self.fitted(family, value).num_parameters()

    # -- drawing
    def _figure(self, family: str, value, alpha: float) -> Figure:
        model = self.fitted(family, value, alpha)
        fig = Figure(figsize=(12.5, 3.8))
        ax_density, ax_samples, ax_curve = fig.subplots(1, 3)
        plot_density(ax_density, model.log_prob, self.box, resolution=self.resolution,
                     title=f"p(x): {_FAMILY_LABELS[family]}, {_label(family, value)}")
        samples = model.sample(self.num_samples, generator=torch.Generator().manual_seed(self.seed)).double()
        train = self.x_train[: self.num_samples].numpy()
        ax_samples.scatter(train[:, 0], train[:, 1], s=4, c="0.6", label="training points")
        ax_samples.scatter(samples[:, 0].numpy(), samples[:, 1].numpy(), s=4, c="C1", label="samples")
        ax_samples.set_xlim(self.box[0], self.box[1])
        ax_samples.set_ylim(self.box[2], self.box[3])
        ax_samples.set_aspect("equal")
        ax_samples.set_xticks([])
        ax_samples.set_yticks([])
        ax_samples.legend(loc="upper right", fontsize=8, markerscale=3)
        ax_samples.set_title(f"{self.num_samples} samples from the model", fontsize=10)

        values = self.capacities[family]
        scores = np.array(self.curve(family, alpha))  # (C, 2)
        pos = np.arange(len(values))
        finite = np.isfinite(scores)
        low = np.nanmin(np.where(finite, scores, np.nan))
        high = np.nanmax(np.where(finite, scores, np.nan))
        pad = 0.1 * max(high - low, 0.1)
        bottom = low - pad
        for col, name, colour in ((0, "train", "C0"), (1, "test", "C3")):
            ok = finite[:, col]
            ax_curve.plot(pos[ok], scores[ok, col], "o-", color=colour, label=name, ms=4)
            if (~ok).any():
                ax_curve.plot(pos[~ok], np.full((~ok).sum(), bottom), "v", color=colour, ms=7,
                              label=f"{name}: -inf")
        ax_curve.axvline(values.index(value), color="0.3", ls="--", lw=1)
        ax_curve.set_ylim(bottom - pad, high + pad)
        ax_curve.set_xticks(pos, [_label(family, v).split(" = ")[-1].replace(" bins", "") for v in values],
                            fontsize=8)
        ax_curve.set_xlabel(f"{_CAPACITY_NAMES[family]} (more flexible to the right)", fontsize=9)
        ax_curve.set_ylabel("mean log p(x), nats per point", fontsize=9)
        ax_curve.legend(fontsize=8)
        ax_curve.set_title("train and test log-likelihood", fontsize=10)
        fig.tight_layout()
        return fig

    def update(self) -> None:
        """Redraw the image and the numbers for the current family, capacity and pseudo-count."""
        family, value, alpha = self.family.value, self.capacity.value, float(self.alpha.value)
        try:
            fig = self._figure(family, value, alpha)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=72)
            self.image.value = buf.getvalue()
            train_ll, test_ll = self.score(family, value, alpha)
            model = self.fitted(family, value, alpha)
            note = ""
            if not math.isfinite(test_ll):
                zero = int((~torch.isfinite(model.log_prob(self.x_test))).sum())
                note = (f"<br><b>{zero} of {len(self.x_test)} test points</b> fall where the model has density 0, "
                        "so the test log-likelihood is -inf: raise the pseudo-count or use fewer bins.")
            best = max(range(len(self.capacities[family])), key=lambda i: self.curve(family, alpha)[i][1])
            self.info.value = (
                f"<b>{html.escape(_FAMILY_LABELS[family])}, {html.escape(_label(family, value))}</b>: "
                f"{self.num_parameters(family, value)} stored numbers; "
                f"mean log p(x) on the training points <b>{train_ll:.3f}</b>, on the test points "
                f"<b>{test_ll:.3f}</b> nats (gap {train_ll - test_ll:.3f}). "
                f"Best test log-likelihood of this family: "
                f"{html.escape(_label(family, self.capacities[family][best]))}.{note}")
            self.status.value = ""
        except Exception as err:  # show the problem in the widget instead of losing it in a callback
            self.status.value = f"<b>explorer error:</b> {html.escape(type(err).__name__)}: {html.escape(str(err))}"
            raise

    # -- callbacks
    def _sync_alpha_visibility(self) -> None:
        self.alpha.layout.display = "" if self.family.value == "histogram" else "none"

    def _on_family(self, _change) -> None:
        family = self.family.value
        self._busy = True  # changing the options fires the capacity observer: draw once, below
        try:
            values = self.capacities[family]
            self.capacity.options = self._options(family)
            self.capacity.value = values[len(values) // 2]
        finally:
            self._busy = False
        self._sync_alpha_visibility()
        self.update()

    def _on_change(self, _change) -> None:
        if not self._busy:
            self.update()


def capacity_explorer(x_train: Tensor, x_test: Tensor, **kwargs) -> CapacityExplorer:
    """A `CapacityExplorer` over 2D training and test points (see the class for the options)."""
    return CapacityExplorer(x_train, x_test, **kwargs)
