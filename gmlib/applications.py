"""Applications of generative models (course lesson 09): anomaly scores and ROC curves, inpainting with a
diffusion model, class swap in a conditional VAE, data augmentation with a conditional generator.

Notation as in lesson 09 ("higher score = more anomalous" throughout):
    reconstruction score  ||g(f(x)) - x||^2              an autoencoder's squared error, summed over pixels
    likelihood score      -log p(x)                      the NLL of an exact-likelihood model (a flow, PixelCNN)
    energy score          E(x)                           an EBM's energy, or an RBM's free energy F(v)
    ROC curve             for each threshold tau (from +inf down to the smallest score), flag x when s(x) >= tau:
                          FPR(tau) = #{normal >= tau} / n_normal,  TPR(tau) = #{anomalous >= tau} / n_anomalous
    AUROC                 the trapezoid area under (FPR, TPR): P(s(anomalous) > s(normal)) + P(equal) / 2

Inpainting (RePaint, Lugmayr et al., 2022): a trained unconditional eps-model fills the unknown pixels of x0
(mask m = 1 where a pixel is KNOWN). At every reverse step t -> t_prev the known part is re-drawn from the
forward process and the unknown part comes from the model's reverse step:
    x_prev_known   = sqrt(alpha_bar_prev) x0 + sqrt(1 - alpha_bar_prev) eps,  eps ~ N(0, I)
    x_prev_unknown ~ p_theta(x_prev | x_t)                                     (one DDPM step)
    x_prev         = m * x_prev_known + (1 - m) * x_prev_unknown               (`repaint_merge`)
With `resample` = r > 1, each step is repeated r times, going back from x_prev to x_t by the forward kernel
q(x_t | x_prev) = N(sqrt(alpha_bar_t / alpha_bar_prev) x_prev, (1 - alpha_bar_t / alpha_bar_prev) I) in between,
so the two parts have time to agree (RePaint's "resampling"; r = 1 is the plain replacement method).

Class swap (Sohn et al., 2015, conditional VAE): z = mu(x, y_source), the encoder mean, carries the handwriting;
decoding it with another label draws the same style as another digit (`swap_class`).

Augmentation: `augment_with_generated` appends per_class generated images of every class to a real labelled
set and returns which rows are generated.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .diffusion import DDPMScheduler
from .nn.blocks import randn_like_with

__all__ = ["roc_curve", "trapezoid_auroc", "anomaly_scores", "MASK_KINDS", "make_mask", "repaint_merge", "inpaint",
           "swap_class", "augment_with_generated"]

MASK_KINDS = ("bottom half", "top half", "left half", "right half", "centre square", "random pixels")


# ---------------------------------------------------------------------------------------------- anomaly detection
def roc_curve(scores_normal: Tensor, scores_anomalous: Tensor) -> tuple[Tensor, Tensor]:
    """The ROC curve of "flag x when score >= tau", tau running over the distinct scores from the largest down.

    scores_normal (n0,), scores_anomalous (n1,) -> fpr, tpr, both (K + 1,) float64, where K is the number of
    distinct scores: the first point is (0, 0) (tau above every score), the last (1, 1).
    """
    neg = torch.as_tensor(scores_normal).detach().flatten().to(torch.float64).cpu()
    pos = torch.as_tensor(scores_anomalous).detach().flatten().to(torch.float64).cpu()
    if len(neg) == 0 or len(pos) == 0:
        raise ValueError("a ROC curve needs at least one normal and one anomalous score")
    thresholds = torch.cat([neg, pos]).unique().flip(0)  # (K,) distinct scores, decreasing
    fpr = (neg[None, :] >= thresholds[:, None]).sum(1) / len(neg)  # (K,)
    tpr = (pos[None, :] >= thresholds[:, None]).sum(1) / len(pos)
    zero = torch.zeros(1, dtype=torch.float64)
    return torch.cat([zero, fpr.double()]), torch.cat([zero, tpr.double()])


def trapezoid_auroc(fpr: Tensor, tpr: Tensor) -> float:
    """Area under a ROC curve given by its points (K,), (K,) in order of increasing fpr (trapezoid rule)."""
    return float(torch.trapezoid(torch.as_tensor(tpr, dtype=torch.float64), torch.as_tensor(fpr, dtype=torch.float64)))


def anomaly_scores(
    x: Tensor,
    reconstruct: Callable[[Tensor], Tensor],
    log_prob: Callable[[Tensor], Tensor],
    energy: Callable[[Tensor], Tensor],
) -> dict[str, Tensor]:
    """The three anomaly scores of images x (B, C, H, W), each (B,), higher = more anomalous:

    "reconstruction": ||reconstruct(x) - x||^2 summed over every pixel and channel;
    "likelihood":     -log_prob(x) (log_prob returns (B,) in nats);
    "energy":         energy(x) (B,).
    """
    with torch.no_grad():
        rec = (reconstruct(x) - x).pow(2).flatten(1).sum(dim=1)  # (B,)
        return {"reconstruction": rec, "likelihood": -log_prob(x), "energy": energy(x)}


# ---------------------------------------------------------------------------------------------- inpainting
def make_mask(kind: str, shape: tuple[int, ...], *, fraction: float = 0.5,
              generator: torch.Generator | None = None) -> Tensor:
    """A mask of `shape` (..., H, W), 1 = known pixel, 0 = to fill in, float32 on the CPU.

    kind: one of MASK_KINDS; "centre square" hides the central H/2 x W/2 block; "random pixels" hides each pixel
    independently with probability `fraction` (drawn from `generator`); the halves hide half the rows or columns.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {MASK_KINDS}, got {kind!r}")
    if len(shape) < 2:
        raise ValueError(f"shape must end with (H, W), got {tuple(shape)}")
    h, w = shape[-2], shape[-1]
    mask = torch.ones(shape)
    if kind == "bottom half":
        mask[..., h // 2 :, :] = 0
    elif kind == "top half":
        mask[..., : h // 2, :] = 0
    elif kind == "left half":
        mask[..., :, : w // 2] = 0
    elif kind == "right half":
        mask[..., :, w // 2 :] = 0
    elif kind == "centre square":
        mask[..., h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = 0
    else:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
        mask = (torch.rand(shape, generator=generator) >= fraction).float()
    return mask


def repaint_merge(x_prev_unknown: Tensor, x0: Tensor, mask: Tensor, alpha_bar_prev: float, eps: Tensor) -> Tensor:
    """x_prev = m * (sqrt(alpha_bar_prev) x0 + sqrt(1 - alpha_bar_prev) eps) + (1 - m) * x_prev_unknown.

    x_prev_unknown, x0, eps (B, ...); mask (B, ...) or broadcastable, 1 where the pixel of x0 is known;
    alpha_bar_prev: alpha_bar at the timestep the step arrives at (1 after the last step: x0 itself).
    """
    known = math.sqrt(alpha_bar_prev) * x0 + math.sqrt(1.0 - alpha_bar_prev) * eps  # (B, ...) ~ q(x_prev | x0)
    return mask * known + (1.0 - mask) * x_prev_unknown


@torch.no_grad()
def inpaint(
    eps_model: Callable[[Tensor, Tensor], Tensor],
    scheduler: DDPMScheduler,
    x0: Tensor,
    mask: Tensor,
    *,
    resample: int = 1,
    generator: torch.Generator | None = None,
    merge_fn: Callable[..., Tensor] = repaint_merge,
) -> Tensor:
    """Fill the pixels of x0 where mask = 0 with an unconditional diffusion model (RePaint, see the module).

    eps_model(x_t (B, ...), t (B,) int64) -> eps (B, ...); scheduler: a `DDPMScheduler` whose timesteps are set;
    x0 (B, ...) in the model's units (images scaled to [-1, 1]); mask broadcastable to x0, 1 = known.
    Returns x (B, ...) in model units: exactly x0 where mask = 1, the model's completion elsewhere.
    """
    if resample < 1:
        raise ValueError(f"resample must be at least 1, got {resample}")
    mask = torch.as_tensor(mask, dtype=x0.dtype, device=x0.device)
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError("mask must hold 0 (unknown pixel) and 1 (known pixel) only")
    mask = mask.expand_as(x0)
    x = randn_like_with(x0, generator)  # x_T ~ N(0, I)
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        ab_t, ab_prev = float(scheduler.alpha_bar_t[i]), float(scheduler.alpha_bar_prev[i])
        t_batch = torch.full((x0.shape[0],), int(t), dtype=torch.long, device=x0.device)
        for r in range(resample):
            eps = eps_model(x, t_batch)
            x_unknown, _ = scheduler.step(eps, t, x, generator=generator)
            x_prev = merge_fn(x_unknown, x0, mask, ab_prev, randn_like_with(x0, generator))
            if r == resample - 1 or i == len(timesteps) - 1:
                x = x_prev
                break
            a = ab_t / ab_prev  # back to t by the forward kernel q(x_t | x_prev)
            x = math.sqrt(a) * x_prev + math.sqrt(1.0 - a) * randn_like_with(x0, generator)
    return x


# ---------------------------------------------------------------------------------------------- conditional models
@torch.no_grad()
def swap_class(cvae: nn.Module, x: Tensor, y_source: Tensor, y_target: Tensor | int) -> Tensor:
    """The handwriting of x drawn as another digit: decode_mean(mu(x, y_source), y_target).

    cvae: a conditional VAE with encode(x, y) -> (mu, logvar) and decode_mean(z, y) (gmlib.models.vae.VAE);
    x (B, C, H, W), y_source (B,) the true labels, y_target (B,) or one int -> (B, C, H, W) in [0, 1].
    """
    mu, _ = cvae.encode(x, y_source)  # (B, d): the encoder mean, no sampling noise
    y_target = torch.as_tensor(y_target, dtype=torch.long, device=x.device)
    if y_target.dim() == 0:
        y_target = y_target.expand(x.shape[0])
    return cvae.decode_mean(mu, y_target)


def augment_with_generated(
    x_real: Tensor, y_real: Tensor, generate: Callable[[Tensor], Tensor], per_class: int, num_classes: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Real examples plus per_class generated ones of each class.

    x_real (N, C, H, W), y_real (N,); generate(labels (M,) int64) -> images (M, C, H, W) of those classes.
    Returns x (N + M, C, H, W), y (N + M,) int64 and is_generated (N + M,) bool, real rows first,
    with M = per_class * num_classes.
    """
    if per_class < 0:
        raise ValueError(f"per_class must be >= 0, got {per_class}")
    labels = torch.arange(num_classes, device=y_real.device).repeat_interleave(per_class)  # (M,)
    x_gen = generate(labels) if per_class > 0 else x_real.new_empty(0, *x_real.shape[1:])
    if tuple(x_gen.shape) != (len(labels), *x_real.shape[1:]):
        raise ValueError(f"generate returned shape {tuple(x_gen.shape)}; expected {(len(labels), *x_real.shape[1:])}")
    x = torch.cat([x_real, x_gen.to(x_real.device, x_real.dtype)])
    y = torch.cat([y_real.long(), labels])
    is_generated = torch.cat([torch.zeros(len(x_real), dtype=torch.bool, device=x.device),
                              torch.ones(len(labels), dtype=torch.bool, device=x.device)])
    return x, y, is_generated
