"""DDPM ancestral sampler (Ho et al., 2020), with the scheduler contract of diffusers.

    scheduler = DDPMScheduler(schedule)          # a NoiseSchedule (or its betas)
    scheduler.set_timesteps(num_steps)           # all T steps, or a strided subset
    x = noise                                    # x_T ~ N(0, I)
    for t in scheduler.timesteps:                # decreasing, within [0, T)
        eps = model(x, t)
        x, x0_pred = scheduler.step(eps, t, x, generator=g)

One step (Ho et al., Algorithm 2, in the x0-parameterisation diffusers uses):
    x0_hat   = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)                  (eq. 15; optionally clipped)
    mu       = sqrt(alpha_bar_prev) beta_t / (1 - alpha_bar_t) x0_hat
             + sqrt(alpha_t) (1 - alpha_bar_prev) / (1 - alpha_bar_t) x_t               (eq. 7)
    x_prev   = mu + sigma_t z,  z ~ N(0, I),  no noise at the last step                 (Algorithm 2, line 4)
    sigma_t^2 = beta_tilde_t = (1 - alpha_bar_prev) / (1 - alpha_bar_t) beta_t   ("fixed_small", eq. 7)
             or beta_t                                                            ("fixed_large")
Without clipping, mu equals eq. 11: 1 / sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps).

The same step as a pure function of the two alpha_bar values, `ddpm_step(x_t, eps, alpha_bar_t, alpha_bar_prev)`
(what course lesson 07 asks for), can replace the built-in one: `DDPMScheduler(schedule, step_fn=ddpm_step)`.

Strided sampling (Nichol and Dhariwal, 2021, sec. 4): on a subset tau_1 < ... < tau_S of the T timesteps the
same marginals q(x_tau | x0) are kept by recomputing beta_tau = 1 - alpha_bar_tau / alpha_bar_prev(tau), where
alpha_bar_prev(tau) is alpha_bar at the next smaller timestep of the subset (1 after the smallest one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..nn.blocks import randn_like_with
from .schedules import NoiseSchedule

__all__ = ["StepOutput", "DDPMScheduler", "spaced_timesteps", "ddpm_step"]

StepFn = Callable[..., Tensor]  # (x_t, eps_pred, alpha_bar_t, alpha_bar_prev[, generator=]) -> x_prev


class StepOutput(NamedTuple):
    """What `step` returns; unpacks as a tuple `x_prev, x0_pred = scheduler.step(...)`.

    x_prev:  (B, ...) the next, less noisy state x_{t-1} (or x at the next timestep of a strided subset)
    x0_pred: (B, ...) the model's estimate of the clean data x0 at this step (after clipping, if any)
    """

    x_prev: Tensor
    x0_pred: Tensor


def spaced_timesteps(T: int, num_steps: int) -> Tensor:
    """num_steps timesteps evenly spaced over [0, T), decreasing, from T - 1 down to 0: (num_steps,) int64."""
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be between 1 and T = {T}, got {num_steps}")
    if num_steps == 1:
        return torch.tensor([T - 1], dtype=torch.long)
    return torch.linspace(T - 1, 0, num_steps, dtype=torch.float64).round().long()


def ddpm_step(
    x_t: Tensor,
    eps_pred: Tensor,
    alpha_bar_t: float,
    alpha_bar_prev: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One ancestral step x_t -> x_prev ~ N(mu_tilde(x_t, x0_hat), beta_tilde), as a pure function.

    x_t, eps_pred (B, ...); alpha_bar_t and alpha_bar_prev the cumulative products at this timestep and the next
    (smaller) one, 1 after the last step. With beta = 1 - alpha_bar_t / alpha_bar_prev (a strided subset's beta):
        x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
        mu     = sqrt(alpha_bar_prev) beta / (1 - alpha_bar_t) x0_hat
               + sqrt(1 - beta) (1 - alpha_bar_prev) / (1 - alpha_bar_t) x_t
        var    = (1 - alpha_bar_prev) / (1 - alpha_bar_t) beta                            (0 at the last step)
    Returns x_prev = mu + sqrt(var) z, z ~ N(0, I) from `generator` (no noise drawn when var = 0): (B, ...).
    """
    ab, ab_prev = float(alpha_bar_t), float(alpha_bar_prev)
    beta = 1.0 - ab / ab_prev
    x0_hat = (x_t - math.sqrt(1.0 - ab) * eps_pred) / math.sqrt(ab)
    mean = (math.sqrt(ab_prev) * beta / (1.0 - ab)) * x0_hat + (math.sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab)) * x_t
    var = (1.0 - ab_prev) / (1.0 - ab) * beta
    if var <= 0.0:
        return mean
    return mean + math.sqrt(var) * randn_like_with(x_t, generator)


class _Scheduler:
    """What DDPM and DDIM share: the schedule's alpha_bar, timesteps and add_noise.

    step_fn: a pure step function (x_t, eps_pred, alpha_bar_t, alpha_bar_prev, ...) -> x_prev that replaces the
    built-in update (a student's `ddpm_step` / `ddim_step`); the scheduler still computes x0_pred, and when
    `clip_sample` is set it passes the eps that is consistent with the clipped x0_pred, so clipping still applies.
    """

    def __init__(
        self, schedule: NoiseSchedule | Tensor, *, clip_sample: float | None = None, step_fn: StepFn | None = None
    ):
        if not isinstance(schedule, NoiseSchedule):
            schedule = NoiseSchedule(schedule)  # a betas tensor
        self.num_train_timesteps = schedule.num_timesteps
        # float64 CPU copies: each step reads a few scalars, whatever device the data is on
        self.alpha_bar = schedule.alpha_bar.detach().cpu().double()  # (T,)
        self.clip_sample = clip_sample
        self.step_fn = step_fn
        self.set_timesteps(self.num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        """Use num_inference_steps timesteps (default all T), evenly spaced and decreasing, in `self.timesteps`."""
        T = self.num_train_timesteps
        self.num_inference_steps = T if num_inference_steps is None else int(num_inference_steps)
        self.timesteps = spaced_timesteps(T, self.num_inference_steps)  # (S,) int64, CPU
        self.alpha_bar_t = self.alpha_bar[self.timesteps]  # (S,)
        self.alpha_bar_prev = torch.cat([self.alpha_bar_t[1:], self.alpha_bar_t.new_ones(1)])  # (S,)
        self._index = {int(t): i for i, t in enumerate(self.timesteps)}

    def _lookup(self, t: Tensor | int) -> tuple[int, float, float]:
        """Position of t in `timesteps`, alpha_bar_t and alpha_bar_prev (1 after the last step)."""
        key = int(t)
        if key not in self._index:
            raise ValueError(f"timestep {key} is not one of this scheduler's timesteps; call set_timesteps first")
        i = self._index[key]
        return i, float(self.alpha_bar_t[i]), float(self.alpha_bar_prev[i])

    def _x0(self, eps_pred: Tensor, x_t: Tensor, ab: float) -> Tensor:
        x0 = (x_t - math.sqrt(1.0 - ab) * eps_pred) / math.sqrt(ab)  # eq. 15
        if self.clip_sample is not None:
            x0 = x0.clamp(-self.clip_sample, self.clip_sample)
        return x0

    def _injected_step(self, eps_pred: Tensor, x_t: Tensor, ab: float, ab_prev: float, **kwargs) -> StepOutput:
        """x_prev from `self.step_fn`, fed the eps consistent with the (clipped) x0_pred."""
        x0_pred = self._x0(eps_pred, x_t, ab)
        if self.clip_sample is not None:
            eps_pred = (x_t - math.sqrt(ab) * x0_pred) / math.sqrt(1.0 - ab)
        return StepOutput(self.step_fn(x_t, eps_pred, ab, ab_prev, **kwargs), x0_pred)

    def add_noise(self, x0: Tensor, eps: Tensor, t: Tensor | int) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (Ho et al., eq. 4): t (B,) or one int."""
        if isinstance(t, Tensor) and t.dim() > 0:
            ab = self.alpha_bar[t.cpu().long()].to(x0.dtype).to(x0.device)  # (B,), cast on the CPU (MPS has no float64)
            ab = ab.reshape(-1, *((1,) * (x0.dim() - 1)))
        else:
            ab = torch.tensor(float(self.alpha_bar[int(t)]), dtype=x0.dtype, device=x0.device)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps


class DDPMScheduler(_Scheduler):
    """Ancestral sampling of Ho et al. (Algorithm 2) on all T timesteps or a strided subset.

    schedule:      a `NoiseSchedule` (or a betas tensor (T,))
    clip_sample:   clip the predicted x0 to [-clip_sample, clip_sample] (1.0 for data scaled to [-1, 1]); None: no clip
    variance_type: "fixed_small" (sigma^2 = beta_tilde) or "fixed_large" (sigma^2 = beta), Ho et al. sec. 3.2
    step_fn:       a function like `ddpm_step` (x_t, eps, alpha_bar_t, alpha_bar_prev, generator=) -> x_prev to use
                   instead of the built-in update ("fixed_small" only)

    After `set_timesteps(S)`, `self.betas` (S,) holds the recomputed betas of the subset, aligned with
    `self.timesteps` (they equal the schedule's betas, reversed, when S = T).
    """

    def __init__(
        self,
        schedule: NoiseSchedule | Tensor,
        *,
        clip_sample: float | None = None,
        variance_type: str = "fixed_small",
        step_fn: StepFn | None = None,
    ):
        if variance_type not in ("fixed_small", "fixed_large"):
            raise ValueError(f"variance_type must be 'fixed_small' or 'fixed_large', got {variance_type!r}")
        if step_fn is not None and variance_type != "fixed_small":
            raise ValueError("a step_fn takes the place of the 'fixed_small' update only")
        self.variance_type = variance_type
        super().__init__(schedule, clip_sample=clip_sample, step_fn=step_fn)

    def set_timesteps(self, num_inference_steps: int | None = None) -> None:
        super().set_timesteps(num_inference_steps)
        self.betas = 1.0 - self.alpha_bar_t / self.alpha_bar_prev  # (S,), Nichol and Dhariwal sec. 4

    def step(
        self, eps_pred: Tensor, t: Tensor | int, x_t: Tensor, *, generator: torch.Generator | None = None
    ) -> StepOutput:
        """One reverse step from x_t at timestep t (one of `self.timesteps`): returns (x_prev, x0_pred)."""
        i, ab, ab_prev = self._lookup(t)
        if self.step_fn is not None:
            return self._injected_step(eps_pred, x_t, ab, ab_prev, generator=generator)
        beta = 1.0 - ab / ab_prev
        alpha = 1.0 - beta
        x0_pred = self._x0(eps_pred, x_t, ab)
        # 1. posterior mean mu_tilde(x_t, x0_hat), eq. 7
        mean = (math.sqrt(ab_prev) * beta / (1.0 - ab)) * x0_pred + (math.sqrt(alpha) * (1.0 - ab_prev) / (1.0 - ab)) * x_t
        # 2. add noise except at the last step (there x_prev is the mean)
        if i == len(self.timesteps) - 1:
            return StepOutput(mean, x0_pred)
        var = beta * (1.0 - ab_prev) / (1.0 - ab) if self.variance_type == "fixed_small" else beta
        z = randn_like_with(x_t, generator)
        return StepOutput(mean + math.sqrt(var) * z, x0_pred)
