"""One training loop for every model of the course.

    history = fit(model, loader, epochs=5, lr=1e-3)          # default step: model.loss + one Adam optimiser
    history = fit(gan, loader, optimizers=gan.optimizers(), step_fn=gan_step, max_steps=2000)

The loop knows nothing about any model. A model provides `loss(batch) -> (scalar, logs)`; a family with two
optimisers (GANs) passes `step_fn(model, batch, optimizers) -> logs`. Callbacks are plain callables
`cb(model, step, logs)` called after every step. FAST mode (GMLIB_FAST=1) caps the number of steps here, so
notebooks need no special cases.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import FAST_MAX_STEPS, fast_mode
from .device import get_device, to_device

__all__ = ["History", "fit", "default_step", "split_batch"]

Callback = Callable[[nn.Module, int, dict], None]
StepFn = Callable[[nn.Module, object, Sequence[torch.optim.Optimizer]], dict]


@dataclass
class History:
    """Logged values: `steps[name]` has one value per optimisation step, `epochs[name]` one mean per epoch."""

    steps: dict[str, list[float]] = field(default_factory=dict)
    epochs: dict[str, list[float]] = field(default_factory=dict)
    num_steps: int = 0
    seconds: float = 0.0

    def log_step(self, logs: dict[str, float]) -> None:
        for k, v in logs.items():
            self.steps.setdefault(k, []).append(float(v))
        self.num_steps += 1

    def log_epoch(self, logs: dict[str, float]) -> None:
        for k, v in logs.items():
            self.epochs.setdefault(k, []).append(float(v))

    def last(self, name: str) -> float:
        """The most recent per-step value of `name`."""
        return self.steps[name][-1]

    def to_dict(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs, "num_steps": self.num_steps, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(steps=d.get("steps", {}), epochs=d.get("epochs", {}),
                   num_steps=d.get("num_steps", 0), seconds=d.get("seconds", 0.0))


def split_batch(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The batch conventions of every model: x, or (x, y, ...) -> (x, y or None)."""
    if isinstance(batch, (list, tuple)):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def _as_float(v) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def default_step(model: nn.Module, batch, optimizers: Sequence[torch.optim.Optimizer]) -> dict:
    """One step of `model.loss(batch)` with the single optimiser; returns the logs with the loss added."""
    (opt,) = optimizers
    opt.zero_grad(set_to_none=True)
    loss, logs = model.loss(batch)
    if loss.dim() != 0:
        raise ValueError(f"model.loss must return a scalar loss, got shape {tuple(loss.shape)}")
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()} (not finite): lower the learning rate or check the loss")
    loss.backward()
    opt.step()
    return {"loss": loss.item(), **{k: _as_float(v) for k, v in logs.items()}}


def fit(
    model: nn.Module,
    loader: Iterable,
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    optimizers: Sequence[torch.optim.Optimizer] | None = None,
    step_fn: StepFn | None = None,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str | None = None,
    progress: bool = True,
    history: History | None = None,
    fast: bool | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> History:
    """Train `model` on batches from `loader`; returns the `History`.

    `device` defaults to `get_device()`; the model and every batch are moved there. `max_steps` stops early
    (FAST mode caps it at `FAST_MAX_STEPS`); `max_seconds` stops after that much training time (a fixed
    compute budget, used by the benchmarks) as measured by `clock` (wall time by default; `time.process_time`
    gives a CPU-time budget that a busy machine does not shrink). `fast` overrides GMLIB_FAST for this call
    (False for networks that must never be shortened, like the metrics' feature networks). The model is left in eval mode.
    """
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    if optimizers is None:
        optimizers = [torch.optim.Adam(model.parameters(), lr=lr)]
    step_fn = step_fn or default_step
    if fast_mode() if fast is None else fast:
        max_steps = min(max_steps or FAST_MAX_STEPS, FAST_MAX_STEPS)
    history = history or History()
    try:
        steps_per_epoch = len(loader)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = None
    total = epochs * steps_per_epoch if steps_per_epoch is not None else None
    if max_steps is not None:
        total = min(total, max_steps) if total is not None else max_steps
    bar = tqdm(total=total, disable=not progress, leave=False, desc=type(model).__name__)
    start, budget_start = time.perf_counter(), clock()
    step = 0
    out_of_time = False
    model.train()
    try:
        for _ in range(epochs):
            sums: dict[str, float] = {}
            count = 0
            for batch in loader:
                if max_steps is not None and step >= max_steps:
                    break
                if max_seconds is not None and clock() - budget_start >= max_seconds:
                    out_of_time = True
                    break
                logs = step_fn(model, to_device(batch, device), optimizers)
                history.log_step(logs)
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
                step += 1
                for cb in callbacks:
                    cb(model, step, logs)
                bar.update(1)
                if "loss" in logs and math.isfinite(logs["loss"]):
                    bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)
            if count:
                history.log_epoch({k: v / count for k, v in sums.items()})
            if out_of_time or (max_steps is not None and step >= max_steps):
                break
    finally:
        bar.close()
        model.eval()
        history.seconds += time.perf_counter() - start
    return history
