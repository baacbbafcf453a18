"""Noise schedules and the closed-form pieces of the forward process (Ho et al., 2020; Nichol and Dhariwal, 2021).

Notation as in course lesson 07 (Ho et al., 2020, "DDPM"). Timesteps are 0-based as in diffusers: index
t = 0, ..., T-1 here is the paper's t = 1, ..., T, and alpha_bar "at t = -1" is 1 (x_{-1} is the data x0).

    beta_t                     variance of the one-step forward kernel
    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)                          (Ho et al., eq. 2)
    alpha_t = 1 - beta_t,  alpha_bar_t = prod_{s <= t} alpha_s
    q(x_t | x0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I)                        (eq. 4)
    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps,  eps ~ N(0, I)           (eq. 9, `q_sample`)
    q(x_{t-1} | x_t, x0) = N(mu_tilde_t, beta_tilde_t I)                             (eq. 6)
        mu_tilde_t   = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x0
                     + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t     (eq. 7)
        beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t                (eq. 7)
    L_simple = E_{t, x0, eps} || eps - eps_theta(x_t, t) ||^2                          (eq. 14, `epsilon_loss`)
    x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_theta) / sqrt(alpha_bar_t)               (eq. 15, `predict_x0`)
    SNR(t) = alpha_bar_t / (1 - alpha_bar_t)

Schedules:
    linear (Ho et al., sec. 4): beta from 1e-4 to 0.02 over T = 1000 steps (scaled by 1000 / T for other T,
        so alpha_bar_{T-1} stays near 4e-5 whatever T; the convention of lucidrains' implementation).
    cosine (Nichol and Dhariwal, 2021, eq. 17): alpha_bar_t = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) pi/2),
        beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} clipped to at most 0.999 (the end of the schedule would
        otherwise reach beta = 1).

`NoiseSchedule` keeps every per-timestep constant as a buffer, so `.to(device)` and `state_dict` just work;
`extract` is the one helper that broadcasts a per-timestep constant to a batch of any rank (2D points or images).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "extract",
    "alpha_bar_from_betas",
    "linear_beta_schedule",
    "cosine_beta_schedule",
    "make_beta_schedule",
    "q_sample",
    "epsilon_loss",
    "predict_x0",
    "posterior_mean_variance",
    "NoiseSchedule",
]


# ---------------------------------------------------------------------------------------------- broadcasting
def extract(a: Tensor, t: Tensor | int, x_shape: torch.Size | tuple[int, ...]) -> Tensor:
    """a[t] shaped to broadcast against a batch x of shape x_shape.

    a (T,) per-timestep constants; t (B,) integer timesteps -> (B, 1, ..., 1) with len(x_shape) dims, or an int /
    0-d tensor (one timestep for the whole batch) -> (1, ..., 1). Works for 2D data (B, d) and images (B, C, H, W).
    """
    ndim = len(x_shape)
    if not isinstance(t, Tensor) or t.dim() == 0:
        return a[int(t)].reshape((1,) * ndim)
    out = a.gather(0, t.to(a.device).long())  # (B,)
    return out.reshape(t.shape[0], *((1,) * (ndim - 1)))


# ---------------------------------------------------------------------------------------------- schedules
def alpha_bar_from_betas(betas: Tensor) -> Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s): betas (T,) -> alpha_bar (T,), same dtype (eq. 4's constants)."""
    return torch.cumprod(1.0 - betas, dim=0)


def linear_beta_schedule(T: int, beta_start: float | None = None, beta_end: float | None = None) -> Tensor:
    """Betas (T,) float64 rising linearly from beta_start to beta_end.

    The defaults are Ho et al.'s 1e-4 and 0.02 for T = 1000, scaled by 1000 / T for other T.
    """
    if T < 1:
        raise ValueError(f"T must be a positive number of steps, got {T}")
    scale = 1000.0 / T
    beta_start = scale * 1e-4 if beta_start is None else beta_start
    beta_end = min(scale * 0.02, 0.999) if beta_end is None else beta_end
    if not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def cosine_beta_schedule(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Betas (T,) float64 of the cosine schedule (Nichol and Dhariwal, eq. 17), clipped to at most max_beta."""
    if T < 1:
        raise ValueError(f"T must be a positive number of steps, got {T}")
    steps = torch.arange(T + 1, dtype=torch.float64)  # paper t = 0 .. T
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2).pow(2)  # (T+1,)
    alpha_bar = f / f[0]
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]  # (T,)
    return betas.clamp(0.0, max_beta)


def make_beta_schedule(name: str, T: int, **kwargs) -> Tensor:
    """`linear_beta_schedule` or `cosine_beta_schedule` by name ("linear" | "cosine")."""
    if name == "linear":
        return linear_beta_schedule(T, **kwargs)
    if name == "cosine":
        return cosine_beta_schedule(T, **kwargs)
    raise ValueError(f"unknown schedule {name!r}; choose 'linear' or 'cosine'")


# ---------------------------------------------------------------------------------------------- the pieces
def q_sample(x0: Tensor, t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """A draw from q(x_t | x0) (eq. 4) in reparameterised form (eq. 9):
    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.

    x0, eps (B, ...); t (B,) integer timesteps in [0, T); alpha_bar (T,) -> x_t (B, ...).
    """
    ab = extract(alpha_bar, t, x0.shape).to(x0.dtype)  # (B, 1, ...)
    return ab.sqrt() * x0 + (1.0 - ab).sqrt() * eps


def epsilon_loss(eps_pred: Tensor, eps: Tensor) -> Tensor:
    """L_simple (eq. 14): mean squared error between predicted and true noise over every element -> scalar."""
    return (eps_pred - eps).pow(2).mean()


def predict_x0(x_t: Tensor, t: Tensor | int, eps_pred: Tensor, alpha_bar: Tensor) -> Tensor:
    """The data estimate implied by a noise prediction (eq. 15, eq. 9 solved for x0):
    x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t).   (B, ...) -> (B, ...)."""
    ab = extract(alpha_bar, t, x_t.shape).to(x_t.dtype)
    return (x_t - (1.0 - ab).sqrt() * eps_pred) / ab.sqrt()


def posterior_mean_variance(
    x0: Tensor, x_t: Tensor, t: Tensor | int, betas: Tensor
) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x0) (eqs. 6-7): (B, ...), (B, ...) -> mu_tilde (B, ...),
    beta_tilde broadcastable (B, 1, ...). At t = 0 the variance is 0 and the mean is x0."""
    alphas = 1.0 - betas
    alpha_bar = torch.cumprod(alphas, dim=0)
    alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    shape = x_t.shape
    b, a, ab, ab_prev = (extract(v, t, shape).to(x_t.dtype) for v in (betas, alphas, alpha_bar, alpha_bar_prev))
    mean = ab_prev.sqrt() * b / (1 - ab) * x0 + a.sqrt() * (1 - ab_prev) / (1 - ab) * x_t
    var = (1 - ab_prev) / (1 - ab) * b
    return mean, var


# ---------------------------------------------------------------------------------------------- the module
class NoiseSchedule(nn.Module):
    """Every per-timestep constant of the forward process, as buffers (T,) float32.

    betas, alphas, alpha_bar, alpha_bar_prev, sqrt_alpha_bar, sqrt_one_minus_alpha_bar,
    posterior_variance (beta_tilde), posterior_log_variance_clipped (log beta_tilde with the t = 0 value, 0,
    replaced by the t = 1 one), posterior_mean_coef1 / coef2 (mu_tilde = coef1 x0 + coef2 x_t).
    The constants are computed in float64 and stored as float32.
    """

    def __init__(self, betas: Tensor):
        super().__init__()
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        if betas.dim() != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D tensor with every value in (0, 1)")
        alphas = 1.0 - betas
        alpha_bar = alpha_bar_from_betas(betas)
        alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
        posterior_variance = betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        log_var = torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]])) if len(betas) > 1 \
            else torch.log(betas)
        constants = {
            "betas": betas,
            "alphas": alphas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            "sqrt_alpha_bar": alpha_bar.sqrt(),
            "sqrt_one_minus_alpha_bar": (1.0 - alpha_bar).sqrt(),
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": log_var,
            "posterior_mean_coef1": betas * alpha_bar_prev.sqrt() / (1.0 - alpha_bar),
            "posterior_mean_coef2": (1.0 - alpha_bar_prev) * alphas.sqrt() / (1.0 - alpha_bar),
        }
        for name, value in constants.items():
            self.register_buffer(name, value.float())

    @classmethod
    def from_name(cls, name: str, T: int, **kwargs) -> NoiseSchedule:
        """NoiseSchedule(make_beta_schedule(name, T, **kwargs)), name "linear" | "cosine"."""
        return cls(make_beta_schedule(name, T, **kwargs))

    @property
    def num_timesteps(self) -> int:
        """T, the number of diffusion steps."""
        return self.betas.shape[0]

    def snr(self, t: Tensor | int) -> Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t) at integer timesteps t (same shape as t)."""
        t = torch.as_tensor(t, device=self.alpha_bar.device).long()
        ab = self.alpha_bar[t]
        return ab / (1.0 - ab)

    def q_sample(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """`q_sample` with this schedule's alpha_bar: x_t (B, ...)."""
        return q_sample(x0, t, eps, self.alpha_bar)

    def predict_x0(self, x_t: Tensor, t: Tensor | int, eps_pred: Tensor) -> Tensor:
        """`predict_x0` with this schedule's alpha_bar: x0_hat (B, ...)."""
        return predict_x0(x_t, t, eps_pred, self.alpha_bar)

    def posterior(self, x0: Tensor, x_t: Tensor, t: Tensor | int) -> tuple[Tensor, Tensor]:
        """Mean (B, ...) and variance (B, 1, ...) of q(x_{t-1} | x_t, x0), from the buffers."""
        shape = x_t.shape
        mean = extract(self.posterior_mean_coef1, t, shape) * x0 + extract(self.posterior_mean_coef2, t, shape) * x_t
        return mean, extract(self.posterior_variance, t, shape)
