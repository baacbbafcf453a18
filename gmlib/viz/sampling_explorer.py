"""Explorers of autoregressive sampling (course lesson 04): the order in which pixels are drawn and what the
model believes at each step, and the effect of temperature and top-k on generated text.

    pixel_sampling_explorer(pixelcnn)                       # scrub through the pixels of a few samples
    text_sampling_explorer({"4-gram": ngram, "transformer": model}, prompt="json.")

Both are built from plain callables, so they work (and are tested) without a kernel: callbacks set
`Image.value` (PNG bytes) and `HTML.value`.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..device import device_of
from ..models.pixelcnn import raster_order
from ..models.text import apply_temperature, top_k_filter
from ..nn.masked import input_gradient_map
from .plots import image_grid, image_view, to_png

__all__ = [
    "PixelSamplingExplorer",
    "pixel_sampling_explorer",
    "TextSamplingExplorer",
    "text_sampling_explorer",
    "filtered_next_probs",
    "UNFILLED_RGB",
    "CURRENT_RGB",
    "FIELD_RGB",
]

UNFILLED_RGB = (0.62, 0.72, 0.90)  # pixels not drawn yet
CURRENT_RGB = (0.90, 0.15, 0.10)  # the pixel drawn at this step
FIELD_RGB = (0.10, 0.75, 0.25)  # tint of the earlier pixels the current pixel's distribution depends on

# sample_fn(n, temperature, generator) -> (x (n, C, H, W) in [0, 1], trajectory (D + 1, n, C, H, W))
PixelSampleFn = Callable[[int, float, torch.Generator], tuple[Tensor, Tensor]]


def _bar_rows(labels: list[str], probs: list[float], marked: int | None = None) -> str:
    """An HTML table of horizontal probability bars; row `marked` is printed bold."""
    rows = []
    for i, (label, p) in enumerate(zip(labels, probs, strict=True)):
        width = max(1, round(160 * p))
        weight = "bold" if i == marked else "normal"
        rows.append(
            f"<tr style='font-weight:{weight}'><td style='padding-right:6px'><code>{label}</code></td>"
            f"<td><div style='background:#4a7fd4;height:10px;width:{width}px'></div></td>"
            f"<td style='padding-left:6px'>{p:.3f}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


# ---------------------------------------------------------------------------------------------- pixels
class PixelSamplingExplorer(widgets.VBox):
    """Scrub through pixel-by-pixel sampling.

    A slider picks the step t (how many pixels are filled, 0..D). The grid shows the n samples at step t: drawn
    pixels in grey, pixels still to come tinted blue, the pixel drawn at step t in red; optionally the earlier
    pixels that this pixel's distribution depends on (the receptive field, by gradients) tinted green. Below,
    the model's distribution p(x_t | x_<t) for the selected sample and the level that was drawn. Changing the
    temperature or the seed draws new samples.

    sample_fn(n, temperature, generator) -> (x, trajectory) as `PixelCNN.sample(..., return_trajectory=True)`;
    logits_fn(k) maps level indices (B, C, H, W) to logits (B, L, C, H, W); dependency_fn(x, row, col) -> (H, W)
    is nonzero where the outputs at (row, col) depend on the input (e.g. `input_gradient_map` of the network).
    """

    def __init__(
        self,
        sample_fn: PixelSampleFn,
        logits_fn: Callable[[Tensor], Tensor],
        image_shape: tuple[int, int, int],
        levels: int,
        *,
        dependency_fn: Callable[[Tensor, int, int], Tensor] | None = None,
        num_samples: int = 8,
        temperature: float = 1.0,
        seed: int = 0,
        scale: int = 16,
    ):
        self.sample_fn, self.logits_fn, self.dependency_fn = sample_fn, logits_fn, dependency_fn
        self.image_shape, self.levels, self.num_samples, self.scale = tuple(image_shape), levels, num_samples, scale
        _, height, width = self.image_shape
        self.order = raster_order(height, width)  # (D, 2)
        d = len(self.order)
        self.temperature = widgets.FloatSlider(
            value=temperature, min=0.0, max=2.0, step=0.05, description="temperature", continuous_update=False
        )
        self.seed = widgets.IntText(value=seed, description="seed")
        self.step = widgets.IntSlider(value=0, min=0, max=d, description="pixels filled", continuous_update=True)
        self.play = widgets.Play(value=0, min=0, max=d, step=1, interval=150, description="play")
        widgets.jslink((self.play, "value"), (self.step, "value"))
        self.which = widgets.IntSlider(value=0, min=0, max=num_samples - 1, description="sample")
        self.show_field = widgets.Checkbox(value=False, description="show what the red pixel sees")
        self.image = image_view()
        self.zoom = image_view()
        self.info = widgets.HTML()
        self.status = widgets.HTML()
        super().__init__(
            [
                widgets.HBox([self.temperature, self.seed]),
                widgets.HBox([self.play, self.step]),
                widgets.HBox([self.which, self.show_field]),
                widgets.HBox([self.zoom, self.image]),
                self.info,
                self.status,
            ]
        )
        self.temperature.observe(lambda _: self.regenerate(), names="value")
        self.seed.observe(lambda _: self.regenerate(), names="value")
        for w in (self.step, self.which, self.show_field):
            w.observe(lambda _: self.update_view(), names="value")
        self.regenerate()

    # -- state
    @torch.no_grad()
    def regenerate(self) -> None:
        """Draw new samples at the current temperature and seed, and every step's predicted distribution."""
        try:
            g = torch.Generator().manual_seed(int(self.seed.value))
            _, traj = self.sample_fn(self.num_samples, float(self.temperature.value), g)
            self.trajectory = traj.detach().float().cpu()  # (D + 1, n, C, H, W)
            self.probs = self._step_probs(self.trajectory)  # (D, n, C, L)
            self.status.value = ""
        except Exception as err:  # shown in the widget: an exception in a callback would be lost
            self.status.value = f"<b>explorer error:</b> {html.escape(f'{type(err).__name__}: {err}')}"
            return
        self.update_view()

    def _step_probs(self, traj: Tensor, chunk: int = 512) -> Tensor:
        """p(x_t | x_<t) at every step t: the model run on frame t (pixels < t filled), read at pixel t."""
        d = len(self.order)
        frames = traj[:d]  # (D, n, C, H, W): frame t has the first t pixels
        k = (frames * (self.levels - 1)).round().long().flatten(0, 1)  # (D*n, C, H, W)
        out = []
        for part in k.split(chunk):
            out.append(F.softmax(self.logits_fn(part).float(), dim=1).cpu())  # (b, L, C, H, W)
        probs = torch.cat(out).view(d, self.num_samples, self.levels, *self.image_shape)  # (D, n, L, C, H, W)
        t = torch.arange(d)
        picked = probs[t, :, :, :, self.order[:, 0], self.order[:, 1]]  # (D, n, L, C)
        return picked.transpose(2, 3)  # (D, n, C, L)

    def current_pixel(self) -> tuple[int, int] | None:
        """(row, col) of the pixel drawn at this step, None once every pixel is filled."""
        t = self.step.value
        return None if t >= len(self.order) else tuple(int(v) for v in self.order[t])

    def render(self, index: int) -> Tensor:
        """Sample `index` at the current step as an RGB image (3, H, W) (colours as in the class docstring)."""
        t = self.step.value
        frame = self.trajectory[t, index]  # (C, H, W)
        _, height, width = self.image_shape
        grey = frame.mean(0)  # (H, W)
        rgb = grey.expand(3, height, width).clone()
        filled = torch.zeros(height * width, dtype=torch.bool)
        filled[:t] = True
        filled = filled.view(height, width)
        for ch, v in enumerate(UNFILLED_RGB):
            rgb[ch][~filled] = v
        pixel = self.current_pixel()
        if pixel is not None:
            if self.show_field.value and self.dependency_fn is not None:
                seen = self.dependency_fn(frame[None], *pixel).cpu() != 0  # (H, W)
                for ch, v in enumerate(FIELD_RGB):
                    rgb[ch][seen] = 0.5 * rgb[ch][seen] + 0.5 * v
            for ch, v in enumerate(CURRENT_RGB):
                rgb[ch][pixel] = v
        return rgb

    # -- views
    def update_view(self) -> None:
        if not hasattr(self, "trajectory"):
            return
        images = torch.stack([self.render(i) for i in range(self.num_samples)])  # (n, 3, H, W)
        self.image.value = to_png(image_grid(images, nrow=min(self.num_samples, 8)), scale=max(2, self.scale // 2))
        self.zoom.value = to_png(images[self.which.value], scale=self.scale)
        self.info.value = self._info_html()

    def _info_html(self) -> str:
        t, i = self.step.value, self.which.value
        d = len(self.order)
        pixel = self.current_pixel()
        if pixel is None:
            return f"<b>all {d} pixels drawn</b>: sample {i} is finished (slide back to see the steps)"
        probs = self.probs[t, i]  # (C, L)
        drawn = (self.trajectory[-1, i, :, pixel[0], pixel[1]] * (self.levels - 1)).round().long()  # (C,)
        parts = [
            f"<b>step {t + 1} of {d}</b>: pixel (row {pixel[0]}, col {pixel[1]}) of sample {i}, drawn from "
            f"p(x<sub>{t + 1}</sub> | the {t} earlier pixels), temperature {self.temperature.value:g}"
        ]
        for c in range(probs.shape[0]):
            labels = [f"{lv}/{self.levels - 1}" for lv in range(self.levels)]
            shown = range(self.levels) if self.levels <= 17 else probs[c].topk(10).indices.tolist()
            parts.append((f"channel {c}: " if probs.shape[0] > 1 else "") + f"drawn level {int(drawn[c])}")
            rows = list(shown)
            marked = rows.index(int(drawn[c])) if int(drawn[c]) in rows else None
            parts.append(_bar_rows([labels[r] for r in rows], [float(probs[c, r]) for r in rows], marked))
        parts.append(
            "<small>The bars are the model's probabilities at temperature 1; sampling at temperature T "
            "uses softmax(logits / T).</small>"
        )
        return "<br>".join(parts)


def pixel_sampling_explorer(
    model: nn.Module, *, num_samples: int = 8, seed: int = 0, temperature: float = 1.0, **kwargs
) -> PixelSamplingExplorer:
    """A `PixelSamplingExplorer` for an unconditional `gmlib.models.pixelcnn.PixelCNN`; the receptive field
    comes from `input_gradient_map` of its network."""
    cfg = model.config
    if cfg.num_classes:
        raise ValueError("pixel_sampling_explorer takes an unconditional PixelCNN (num_classes = 0)")
    model.eval()
    dev = device_of(model)

    def sample_fn(n, temperature, generator):
        return model.sample(n, generator=generator, temperature=temperature, return_trajectory=True)

    def logits_fn(k):
        return model.logits_from_levels(k.to(dev))

    def dependency_fn(x, row, col):
        u = x.to(dev) * 2.0 - 1.0  # the network's input scale; the map does not depend on the values
        return input_gradient_map(model.network, u, row, col)

    return PixelSamplingExplorer(
        sample_fn,
        logits_fn,
        tuple(cfg.image_shape),
        int(cfg.levels),
        dependency_fn=dependency_fn,
        num_samples=num_samples,
        seed=seed,
        temperature=temperature,
        **kwargs,
    )


# ---------------------------------------------------------------------------------------------- text
def filtered_next_probs(model, history: str, temperature: float, top_k: int | None) -> Tensor:
    """The distribution a sampler draws the next character from: softmax(top_k(log p / temperature)), (V,)
    float64; temperature 0 puts all mass on the most likely character. `model` has `next_probs(history)`."""
    p = model.next_probs(history).double()  # (V,)
    if temperature == 0:
        return F.one_hot(p.argmax(), p.numel()).double()
    logits = apply_temperature(p.clamp_min(1e-300).log(), temperature)
    if top_k:
        logits = top_k_filter(logits, top_k)
    return F.softmax(logits, dim=-1)


class TextSamplingExplorer(widgets.VBox):
    """Generate text with a chosen model, temperature and top-k; shows the sample and the distribution of the
    first character after the prompt (the one the sampler draws from).

    models: name -> a model with `sample(n, length, prompt=, temperature=, top_k=, generator=) -> list[str]`,
    `next_probs(history) -> (V,)` and `vocab` (`gmlib.models.text.NGramModel`, `CharTransformer`).
    top_k 0 means no top-k filter; temperature 0 is greedy decoding.
    """

    def __init__(
        self,
        models: dict,
        *,
        prompt: str = "",
        length: int = 200,
        temperature: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        shown: int = 10,
    ):
        if not models:
            raise ValueError("give at least one model")
        self.models, self.shown = dict(models), shown
        vocab_size = max(len(m.vocab) for m in self.models.values())
        self.model_select = widgets.Dropdown(options=list(self.models), value=list(self.models)[-1], description="model")
        self.temperature = widgets.FloatSlider(
            value=temperature, min=0.0, max=2.0, step=0.05, description="temperature", continuous_update=False
        )
        self.top_k = widgets.IntSlider(
            value=top_k, min=0, max=vocab_size, description="top-k (0: off)", continuous_update=False
        )
        self.prompt = widgets.Text(value=prompt, description="prompt", continuous_update=False)
        self.length = widgets.IntSlider(
            value=length, min=10, max=600, step=10, description="length", continuous_update=False
        )
        self.seed = widgets.IntText(value=seed, description="seed")
        self.resample = widgets.Button(description="new sample")
        self.text = widgets.HTML()
        self.dist = widgets.HTML()
        self.status = widgets.HTML()
        super().__init__(
            [
                widgets.HBox([self.model_select, self.prompt]),
                widgets.HBox([self.temperature, self.top_k]),
                widgets.HBox([self.length, self.seed, self.resample]),
                widgets.HBox([self.dist, self.text]),
                self.status,
            ]
        )
        for w in (self.model_select, self.temperature, self.top_k, self.prompt, self.length, self.seed):
            w.observe(lambda _: self.regenerate(), names="value")
        self.resample.on_click(self._on_resample)
        self.regenerate()

    @property
    def model(self):
        return self.models[self.model_select.value]

    def settings(self) -> dict:
        """The sampler's arguments as the widgets set them."""
        return {
            "prompt": self.prompt.value,
            "temperature": float(self.temperature.value),
            "top_k": int(self.top_k.value) or None,
        }

    @torch.no_grad()
    def regenerate(self) -> None:
        s = self.settings()
        try:
            g = torch.Generator().manual_seed(int(self.seed.value))
            (sample,) = self.model.sample(1, int(self.length.value), generator=g, **s)
            probs = filtered_next_probs(self.model, s["prompt"], s["temperature"], s["top_k"])
        except (KeyError, ValueError) as err:  # e.g. a prompt character outside the vocabulary
            msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)  # KeyError's str adds quotes
            self.status.value = f"<b>cannot sample:</b> {html.escape(str(msg), quote=False)}"
            return
        self.status.value = ""
        self.sample = sample
        self.next_distribution = probs
        body = html.escape(sample[len(s["prompt"]) :])
        self.text.value = f"<pre style='white-space:pre-wrap;max-width:640px'><b>{html.escape(s['prompt'])}</b>{body}</pre>"
        self.dist.value = self._dist_html(probs)

    def _dist_html(self, probs: Tensor) -> str:
        chars = self.model.vocab.chars
        k = min(self.shown, probs.numel())
        top = probs.topk(k)
        labels = [repr(chars[i])[1:-1] or " " for i in top.indices.tolist()]
        entropy = float(-(probs * probs.clamp_min(1e-300).log2()).sum())
        support = int((probs > 0).sum())
        head = f"<b>next character after the prompt</b><br>{support} possible characters, entropy {entropy:.2f} bits<br>"
        return head + _bar_rows([html.escape(x) for x in labels], top.values.tolist())

    def _on_resample(self, _button=None) -> None:
        self.seed.value = int(self.seed.value) + 1  # fires regenerate


def text_sampling_explorer(models: dict, **kwargs) -> TextSamplingExplorer:
    """A `TextSamplingExplorer` over `models` (name -> NGramModel or CharTransformer), see the class."""
    for m in models.values():
        if isinstance(m, nn.Module):
            m.eval()
    return TextSamplingExplorer(models, **kwargs)
