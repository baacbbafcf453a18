"""Human judgement as a protocol: a two-alternative forced-choice test (real or generated?).

Each trial shows one real and one generated image side by side, in random order; the person clicks the one
they believe is real. Over n trials the generator "fools" the person k times (the generated image was picked as
real). A perfect generator fools an attentive judge half the time (chance), an obvious one never. The report is
the fool rate k / n with a Wilson score interval (Wilson, 1927), which unlike the textbook p +- z sqrt(p(1-p)/n)
stays inside [0, 1] and does not collapse to a single point when k = 0 or k = n:

    centre = (p + z^2 / (2n)) / (1 + z^2 / n),   half width = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))

with p = k / n and z the standard normal quantile (1.96 for 95 %). It is the set of rates p0 for which the score
test of "the true rate is p0" does not reject at that level.

    judge = judge_widget(real_images, generated_images, num_trials=20)   # display it, click, read judge.report
    judge.answer("left")                                                 # the same as clicking, for scripts/tests
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ipywidgets as widgets
import torch
from torch import Tensor

from .plots import image_grid, image_view, to_png

__all__ = ["wilson_interval", "Trial", "JudgeWidget", "judge_widget"]

SIDES = ("left", "right")


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (low, high) for a binomial proportion successes / trials; (0, 1) when trials = 0."""
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got successes={successes}, trials={trials}")
    if z <= 0:
        raise ValueError(f"z must be positive, got {z}")
    if trials == 0:
        return 0.0, 1.0
    n, p = trials, successes / trials
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Trial:
    """One forced choice: which side held the real image, which side the person chose."""

    real_index: int
    fake_index: int
    real_side: str
    choice: str | None = None

    @property
    def fooled(self) -> bool:
        """Was the generated image picked as the real one?"""
        return self.choice is not None and self.choice != self.real_side


class JudgeWidget(widgets.VBox):
    """A 2AFC test over `num_trials` pairs drawn (without replacement where possible) from `real` and `fake`,
    images (N, C, H, W) in [0, 1]. Attributes: `trials` (list of `Trial`), `image`, `left_button`,
    `right_button`, `restart_button`, `report` (HTML), `progress` (HTML)."""

    def __init__(self, real: Tensor, fake: Tensor, *, num_trials: int = 20, seed: int = 0, scale: int = 16,
                 z: float = 1.96):
        for name, imgs in (("real", real), ("fake", fake)):
            if not isinstance(imgs, Tensor) or imgs.dim() != 4 or len(imgs) == 0:
                shape = tuple(imgs.shape) if isinstance(imgs, Tensor) else type(imgs).__name__
                raise ValueError(f"{name} must be images (N, C, H, W) in [0, 1] with N >= 1, got {shape}")
        if real.shape[1:] != fake.shape[1:]:
            raise ValueError(f"real and fake images differ in shape: {tuple(real.shape[1:])} vs {tuple(fake.shape[1:])}")
        if num_trials < 1:
            raise ValueError(f"num_trials must be at least 1, got {num_trials}")
        self.real, self.fake = real.detach().float().cpu(), fake.detach().float().cpu()
        self.num_trials, self.seed, self.scale, self.z = num_trials, seed, scale, z
        self.image = image_view()
        self.left_button = widgets.Button(description="left is real")
        self.right_button = widgets.Button(description="right is real")
        self.restart_button = widgets.Button(description="start again")
        self.progress = widgets.HTML()
        self.report = widgets.HTML()
        super().__init__([self.progress, self.image,
                          widgets.HBox([self.left_button, self.right_button, self.restart_button]), self.report])
        self.left_button.on_click(lambda _b: self.answer("left"))
        self.right_button.on_click(lambda _b: self.answer("right"))
        self.restart_button.on_click(lambda _b: self.restart())
        self.restart()

    # -- protocol
    def restart(self) -> None:
        """Draw a fresh, seeded sequence of pairs and clear the answers."""
        g = torch.Generator().manual_seed(self.seed)

        def indices(count: int) -> list[int]:
            reps = -(-self.num_trials // count)  # enough shuffled copies to cover every trial
            return torch.cat([torch.randperm(count, generator=g) for _ in range(reps)])[: self.num_trials].tolist()

        real_idx, fake_idx = indices(len(self.real)), indices(len(self.fake))
        sides = torch.randint(0, 2, (self.num_trials,), generator=g).tolist()
        self.trials = [Trial(r, f, SIDES[s]) for r, f, s in zip(real_idx, fake_idx, sides, strict=True)]
        self._refresh()

    @property
    def current(self) -> int:
        """Index of the next unanswered trial (num_trials when done)."""
        return sum(t.choice is not None for t in self.trials)

    def answer(self, side: str) -> None:
        """Record that the person picked `side` ("left" or "right") as the real image, then show the next pair."""
        if side not in SIDES:
            raise ValueError(f"side must be 'left' or 'right', got {side!r}")
        i = self.current
        if i >= self.num_trials:
            return  # finished: further clicks are ignored
        self.trials[i].choice = side
        self._refresh()

    def results(self) -> dict[str, float]:
        """answered, fooled, rate (fooled / answered) and the Wilson interval (low, high) of the rate."""
        answered = self.current
        fooled = sum(t.fooled for t in self.trials)
        low, high = wilson_interval(fooled, answered, self.z)
        return {"answered": answered, "fooled": fooled, "rate": fooled / answered if answered else float("nan"),
                "low": low, "high": high}

    # -- views
    def _pair(self, trial: Trial) -> Tensor:
        real, fake = self.real[trial.real_index], self.fake[trial.fake_index]
        return torch.stack([real, fake] if trial.real_side == "left" else [fake, real])  # (2, C, H, W)

    def _refresh(self) -> None:
        i = self.current
        done = i >= self.num_trials
        self.left_button.disabled = self.right_button.disabled = done
        if not done:
            self.image.value = to_png(image_grid(self._pair(self.trials[i]), nrow=2, padding=2), scale=self.scale)
            self.progress.value = f"trial {i + 1} of {self.num_trials}: which image is the real one?"
        else:
            self.progress.value = f"all {self.num_trials} trials answered"
        r = self.results()
        if r["answered"] == 0:
            self.report.value = "no answers yet"
            return
        level = round(100 * (math.erf(self.z / math.sqrt(2))))
        self.report.value = (f"the generator fooled you in <b>{r['fooled']} of {r['answered']}</b> trials "
                             f"({100 * r['rate']:.0f} %); {level} % Wilson interval "
                             f"[{100 * r['low']:.0f} %, {100 * r['high']:.0f} %]. Chance (indistinguishable) is 50 %.")


def judge_widget(real: Tensor, fake: Tensor, **kwargs) -> JudgeWidget:
    """A `JudgeWidget` (two-alternative forced choice, real or generated?) for images (N, C, H, W) in [0, 1]."""
    return JudgeWidget(real, fake, **kwargs)
