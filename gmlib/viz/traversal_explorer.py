"""Latent traversal per factor: what each latent dimension of a (beta-)VAE draws, and which true factor it tracks.

    ex = traversal_explorer(vae.decode_mean, codes, mi=report["mi"], factor_entropy=report["entropy"],
                            factor_names=SPRITE_FACTOR_NAMES)

`codes` (N, d) are the encoder means of N images (the explorer starts from one of them, chosen by `index`).
One slider per latent dimension sets z; the image shows the decoder's mean at z. Below, the traversal grid: row
j decodes z with dimension j swept over [-span, span] (the other dimensions as the sliders say), so a row that
changes one property of the sprite (position, size, ...) and nothing else is a disentangled dimension. The table
names, for each dimension, the spread of its codes over the data and the true factor it shares the most
information with, as a fraction of that factor's entropy (I(z_j; v_k) / H(v_k), from `mi` and
`factor_entropy`, e.g. `gmlib.metrics.disentanglement.disentanglement_report`). Callbacks set `Image.value`
and `HTML.value`, so the widget works, and is tested, without a kernel.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as widgets
import torch
from torch import Tensor

from .plots import image_grid, image_view, to_png

__all__ = ["TraversalExplorer", "traversal_explorer", "latent_traversal"]

Decode = Callable[[Tensor], Tensor]  # z (n, d) -> images (n, C, H, W) in [0, 1]


def latent_traversal(z: Tensor, dim: int, values: Tensor) -> Tensor:
    """Copies of z (d,) with dimension `dim` set to each of `values` (S,) in turn: -> (S, d); z is unchanged."""
    if z.dim() != 1 or not 0 <= dim < z.shape[0]:
        raise ValueError(f"z must be one code (d,) and 0 <= dim < d, got shape {tuple(z.shape)} and dim {dim}")
    out = z.detach().clone().repeat(len(values), 1)  # (S, d)
    out[:, dim] = torch.as_tensor(values, dtype=z.dtype, device=z.device)
    return out


class TraversalExplorer(widgets.VBox):
    """Sliders over the latent dimensions, the decoded image, a traversal grid (one row per dimension) and a
    table of which factor each dimension tracks. See the module docstring."""

    def __init__(
        self,
        decode: Decode,
        codes: Tensor,
        *,
        mi: Tensor | None = None,
        factor_entropy: Tensor | None = None,
        factor_names: Sequence[str] | None = None,
        traversal_fn: Callable[[Tensor, int, Tensor], Tensor] = latent_traversal,
        span: float = 3.0,
        num_steps: int = 9,
        index: int = 0,
        scale: int = 8,
        device: torch.device | str = "cpu",
    ):
        if codes.dim() != 2 or len(codes) == 0:
            raise ValueError(f"codes must be (N, d) encoder means with N >= 1, got shape {tuple(codes.shape)}")
        d = codes.shape[1]
        if mi is not None:
            k = mi.shape[1] if mi.dim() == 2 else -1
            if mi.shape[0] != d or k < 1:
                raise ValueError(f"mi must be (d, K) = ({d}, K), got shape {tuple(mi.shape)}")
            factor_names = list(factor_names) if factor_names is not None else [f"factor {i}" for i in range(k)]
            if len(factor_names) != k:
                raise ValueError(f"{len(factor_names)} factor names for {k} factors")
            if factor_entropy is not None and tuple(factor_entropy.shape) != (k,):
                raise ValueError(f"factor_entropy must be (K,) = ({k},), got shape {tuple(factor_entropy.shape)}")
        if num_steps < 2:
            raise ValueError(f"num_steps must be at least 2, got {num_steps}")
        self.decode_fn, self.traversal_fn = decode, traversal_fn
        self.codes = codes.detach().float().cpu()
        self.mi = None if mi is None else mi.detach().double().cpu()
        self.entropy = None if factor_entropy is None else factor_entropy.detach().double().cpu()
        self.factor_names = factor_names
        self.span, self.num_steps, self.scale = span, num_steps, scale
        self.device = torch.device(device)

        self.index = widgets.IntSlider(value=min(max(index, 0), len(codes) - 1), min=0, max=len(codes) - 1,
                                       description="start at")
        self.sliders = [widgets.FloatSlider(value=0.0, min=-span, max=span, step=0.05, description=f"z[{j}]")
                        for j in range(d)]
        self.image = image_view()
        self.grid = image_view()
        self.table = widgets.HTML()
        self.status = widgets.HTML()
        left = widgets.VBox([self.index, *self.sliders, self.image])
        right = widgets.VBox([widgets.HTML(f"<b>traversals</b>: row j sweeps z[j] over [-{span:g}, {span:g}]"),
                              self.grid, self.table])
        super().__init__([widgets.HBox([left, right]), self.status])

        self._syncing = False
        self.index.observe(self._on_index, names="value")
        for s in self.sliders:
            s.observe(self._on_latent, names="value")
        self.table.value = self.factor_table()
        self._load_code()

    # -- state
    def current_z(self) -> Tensor:
        """The code the sliders describe, (d,)."""
        return torch.tensor([s.value for s in self.sliders], dtype=torch.float32)

    @torch.no_grad()
    def _decode(self, z: Tensor) -> Tensor:
        return self.decode_fn(z.to(self.device)).detach().float().cpu()

    def traversals(self) -> Tensor:
        """The traversal grid's images: (d, num_steps, C, H, W), row j sweeping dimension j."""
        z, values = self.current_z(), torch.linspace(-self.span, self.span, self.num_steps)
        rows = torch.cat([self.traversal_fn(z, j, values) for j in range(len(z))])  # (d * S, d)
        images = self._decode(rows)
        return images.view(len(z), self.num_steps, *images.shape[1:])

    def tracked_factors(self) -> list[tuple[str, float]] | None:
        """Per latent dimension: the factor it shares the most information with and I / H(factor) (or I in
        nats without entropies)."""
        if self.mi is None:
            return None
        share = self.mi / self.entropy[None] if self.entropy is not None else self.mi  # (d, K)
        best = share.argmax(1)
        return [(self.factor_names[int(k)], float(share[j, k])) for j, k in enumerate(best)]

    def factor_table(self) -> str:
        """HTML: per dimension, the spread of its codes over the data and the factor it tracks."""
        spread = self.codes.std(0) if len(self.codes) > 1 else torch.zeros(self.codes.shape[1])
        tracked = self.tracked_factors()
        unit = "I / H(factor)" if self.entropy is not None else "I (nats)"
        head = "<tr><th>latent</th><th>std of codes</th>" + (f"<th>tracks</th><th>{unit}</th>" if tracked else "") + "</tr>"
        rows = []
        for j in range(self.codes.shape[1]):
            cells = f"<td>z[{j}]</td><td>{spread[j]:.2f}</td>"
            if tracked:
                name, value = tracked[j]
                cells += f"<td>{html.escape(name)}</td><td>{value:.2f}</td>"
            rows.append(f"<tr>{cells}</tr>")
        return f"<table>{head}{''.join(rows)}</table>"

    # -- views
    def _refresh(self) -> None:
        try:
            self.image.value = to_png(self._decode(self.current_z()[None])[0], scale=self.scale)
            grid = self.traversals()
            self.grid.value = to_png(image_grid(grid.flatten(0, 1), nrow=self.num_steps), scale=max(2, self.scale // 2))
            self.status.value = ""
        except Exception as err:  # shown in the widget instead of lost in a callback
            self.status.value = f"<b>explorer error:</b> {html.escape(type(err).__name__)}: {html.escape(str(err))}"
            raise

    def _load_code(self) -> None:
        self._syncing = True
        try:
            for s, v in zip(self.sliders, self.codes[self.index.value].tolist(), strict=True):
                s.value = max(-self.span, min(self.span, v))
        finally:
            self._syncing = False
        self._refresh()

    # -- callbacks
    def _on_index(self, _change) -> None:
        self._load_code()

    def _on_latent(self, _change) -> None:
        if not self._syncing:
            self._refresh()


def traversal_explorer(decode: Decode, codes: Tensor, **kwargs) -> TraversalExplorer:
    """Build a `TraversalExplorer` (see its docstring and the module's for the arguments)."""
    return TraversalExplorer(decode, codes, **kwargs)
