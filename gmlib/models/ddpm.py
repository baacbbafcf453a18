"""Denoising diffusion probabilistic model (Ho et al., 2020), sampled by DDPM or DDIM (Song et al., 2021), with
classifier-free guidance (Ho and Salimans, 2022).

Notation as in course lesson 07 (timesteps 0-based, t in [0, T); see gmlib.diffusion.schedules):
    x0 (B, C, H, W) data scaled from [0, 1] to [-1, 1] (images), or (B, d) raw points (2D)
    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps,  eps ~ N(0, I)                (eq. 4 and 9)
    loss = E_{t ~ U[0, T), eps} || eps - eps_theta(x_t, t, y) ||^2                           (eq. 14, L_simple)
    classifier-free guidance with weight w = guidance_scale (Ho and Salimans, eq. 6):
        eps_guided = (1 + w) eps_theta(x_t, t, y) - w eps_theta(x_t, t, null)
    so w = 0 is the plain conditional model; diffusers' "guidance_scale" s is our 1 + w.
    Training drops the label to the null class with probability p_uncond, so one network learns both.

The sampling loop is written out in `DDPM.sample`: for t in scheduler.timesteps: eps = model(x, t);
x, x0 = scheduler.step(eps, t, x). The pieces a lesson teaches are small pure functions, and the model takes a
student's own by injection:
    DDPM(config, q_sample_fn=..., loss_fn=...)      # training: eq. 9 and L_simple (eps_pred, eps) -> scalar
    DDPM(config, diffusion_loss_fn=...)             # training: all of Algorithm 1 (`diffusion_loss`)
    DDPM(config, ddpm_step_fn=..., ddim_step_fn=..., guidance_fn=...)   # sampling (`ddpm_step`, `ddim_step`,
                                                                        # `guided_eps`); not in the cache key
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..checkpoints import function_key
from ..diffusion import DDIMScheduler, DDPMScheduler, NoiseSchedule, epsilon_loss, make_beta_schedule, q_sample
from ..diffusion.ddpm import StepFn
from ..nn.blocks import randn_like_with
from ..nn.unet import MLPDenoiser, UNet
from ..train import split_batch

__all__ = ["DDPMConfig", "DDPM", "guided_eps", "diffusion_loss", "EMA"]

EpsModel = Callable[[Tensor, Tensor], Tensor]  # eps_theta(x_t (B, ...), t (B,) int64) -> (B, ...)


# ---------------------------------------------------------------------------------------------- the pieces
def guided_eps(eps_cond: Tensor, eps_uncond: Tensor, guidance_scale: float) -> Tensor:
    """Classifier-free guidance (Ho and Salimans, eq. 6): (1 + w) eps_cond - w eps_uncond, w = guidance_scale.

    w = 0: the conditional prediction; w > 0: pushed away from the unconditional one. Shapes (B, ...) -> (B, ...).
    """
    return (1.0 + guidance_scale) * eps_cond - guidance_scale * eps_uncond


def diffusion_loss(
    eps_model: EpsModel,
    x0: Tensor,
    alpha_bar: Tensor,
    generator: torch.Generator | None = None,
    *,
    q_sample_fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None = None,
) -> Tensor:
    """L_simple for one batch (Ho et al., Algorithm 1): t ~ U{0, ..., T-1} and eps ~ N(0, I) per example,
    x_t = q_sample(x0, t, eps, alpha_bar), loss = mean over every element of (eps_model(x_t, t) - eps)^2.

    eps_model: eps_theta(x_t (B, ...), t (B,) int64) -> (B, ...); x0 (B, ...); alpha_bar (T,) -> scalar.
    t and eps are drawn from `generator` (on its device, then moved to x0's), t first.
    """
    b, T = x0.shape[0], alpha_bar.shape[0]
    gdev = generator.device if generator is not None else x0.device
    t = torch.randint(0, T, (b,), generator=generator, device=gdev).to(x0.device)  # (B,)
    eps = randn_like_with(x0, generator)  # (B, ...)
    x_t = (q_sample_fn or q_sample)(x0, t, eps, alpha_bar)
    return (eps_model(x_t, t) - eps).pow(2).mean()


# ---------------------------------------------------------------------------------------------- training aid
class EMA:
    """Exponential moving average of a model's weights, as a `fit` callback (Ho et al., 2020, sample from it).

    After each step: shadow <- d * shadow + (1 - d) * weights, with d = min(decay, (1 + step) / (10 + step))
    (warmed up, so the first steps do not keep the random initial weights). `copy_to_model()` puts the averaged
    weights into the model at the end of training.
    """

    def __init__(self, model: nn.Module, decay: float = 0.995):
        self.params = list(model.parameters())
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay

    @torch.no_grad()
    def __call__(self, model: nn.Module, step: int, logs: dict) -> None:
        if self.shadow[0].device != self.params[0].device:  # fit moved the model after this was made
            self.shadow = [s.to(p.device) for s, p in zip(self.shadow, self.params, strict=True)]
        decay = min(self.decay, (1 + step) / (10 + step))
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p.detach(), 1.0 - decay)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        for s, p in zip(self.shadow, self.params, strict=True):
            p.copy_(s)


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class DDPMConfig:
    kind: str = "image"  # "image": UNet on (C, H, W) in [0, 1]; "2d": MLP on raw points (data_dim,)
    image_shape: tuple[int, int, int] = (1, 8, 8)  # kind "image"
    data_dim: int = 2  # kind "2d"
    T: int = 1000  # diffusion steps
    # "linear" (Ho et al., scaled by 1000 / T) or "cosine" (Nichol and Dhariwal); None: "cosine" for images,
    # "linear" for 2D (cosine's alpha_bar_{T-1} ~ 2e-9 makes DDIM's first x0 estimate blow up without clipping)
    schedule: str | None = None
    widths: tuple[int, ...] | None = None  # UNet channels per resolution (default (32, 64)); MLP hidden (256,) * 3
    num_classes: int = 0  # > 0: conditional on labels y, with a null class for classifier-free guidance
    p_uncond: float = 0.1  # probability of dropping a label to the null class during training (num_classes > 0)
    clip_x0: bool = True  # kind "image": clip the predicted x0 to [-1, 1] while sampling


class DDPM(nn.Module):
    """eps-prediction diffusion model. `loss(batch)`: L_simple at random t; batch = x or (x, y).

    `schedule` (a `NoiseSchedule`) holds the constants as buffers; `denoiser` is eps_theta(x_t, t, y).
    """

    def __init__(
        self,
        config: DDPMConfig,
        *,
        q_sample_fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        diffusion_loss_fn: Callable[..., Tensor] | None = None,
        ddpm_step_fn: StepFn | None = None,
        ddim_step_fn: StepFn | None = None,
        guidance_fn: Callable[[Tensor, Tensor, float], Tensor] | None = None,
    ):
        super().__init__()
        if config.kind not in ("image", "2d"):
            raise ValueError(f"kind must be 'image' or '2d', got {config.kind!r}")
        if not 0.0 <= config.p_uncond < 1.0:
            raise ValueError(f"p_uncond must be in [0, 1), got {config.p_uncond}")
        self.config = config
        self.q_sample_fn = q_sample_fn
        self.loss_fn = loss_fn
        self.diffusion_loss_fn = diffusion_loss_fn  # like `diffusion_loss`; replaces q_sample_fn and loss_fn
        self.ddpm_step_fn = ddpm_step_fn  # like `gmlib.diffusion.ddpm_step`
        self.ddim_step_fn = ddim_step_fn  # like `gmlib.diffusion.ddim_step` (eta = 0 steps)
        self.guidance_fn = guidance_fn  # like `guided_eps`
        schedule = config.schedule or ("cosine" if config.kind == "image" else "linear")
        self.schedule = NoiseSchedule(make_beta_schedule(schedule, config.T))
        if config.kind == "image":
            self.data_shape: tuple[int, ...] = tuple(config.image_shape)
            widths = config.widths or (32, 64)
            self.denoiser: nn.Module = UNet(config.image_shape[0], widths, num_classes=config.num_classes)
        else:
            self.data_shape = (config.data_dim,)
            widths = config.widths or (256, 256, 256)
            self.denoiser = MLPDenoiser(config.data_dim, widths, num_classes=config.num_classes)

    # -- helpers
    _split = staticmethod(split_batch)

    def cache_key(self) -> dict:
        """What besides the config determines the trained weights: the injected training functions' code (the
        sampling pieces do not change the weights)."""
        key = {name: function_key(getattr(self, name)) for name in ("q_sample_fn", "loss_fn")}
        if self.diffusion_loss_fn is not None:  # only when given, so older keys stay valid
            key["diffusion_loss_fn"] = function_key(self.diffusion_loss_fn)
        return key

    def to_model_space(self, x: Tensor) -> Tensor:
        """Data -> the diffusion variable x0: images [0, 1] -> [-1, 1]; 2D points unchanged."""
        return 2.0 * x - 1.0 if self.config.kind == "image" else x

    def to_data_space(self, x: Tensor) -> Tensor:
        """The diffusion variable -> data units: images (x + 1) / 2 (not clipped); 2D points unchanged."""
        return (x + 1.0) / 2.0 if self.config.kind == "image" else x

    def _labels(self, y: Tensor | int | None, n: int, device: torch.device) -> Tensor | None:
        if y is None:
            return None
        if self.config.num_classes == 0:
            raise ValueError("this DDPM is unconditional (num_classes = 0): do not pass labels y")
        y = torch.as_tensor(y, dtype=torch.long, device=device)
        if y.dim() == 0:
            return y.expand(n)
        if y.shape != (n,):
            raise ValueError(f"y must be one label or n = {n} labels, got shape {tuple(y.shape)}")
        return y

    # -- training
    def loss(self, batch, *, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        """Mean L_simple over the batch with t ~ U[0, T) and eps ~ N(0, I) per example.

        A conditional model (num_classes > 0) drops each label to the null class with probability p_uncond;
        given no labels, it trains the null class only. The log "eps_mse" is L_simple by the reference formula
        (equal to the loss unless a loss_fn was injected; absent with a diffusion_loss_fn, which draws its own
        noise).
        """
        x, y = self._split(batch)
        x0 = self.to_model_space(x)  # (B, ...)
        b, dev, T = x0.shape[0], x0.device, self.config.T
        gdev = generator.device if generator is not None else dev
        if self.diffusion_loss_fn is not None:
            y = self._train_labels(y, b, dev, gdev, generator)
            loss = self.diffusion_loss_fn(lambda x_t, t: self.denoiser(x_t, t, y), x0, self.schedule.alpha_bar,
                                          generator)
            return loss, {}
        t = torch.randint(0, T, (b,), generator=generator, device=gdev).to(dev)  # (B,)
        eps = randn_like_with(x0, generator)  # (B, ...)
        x_t = (self.q_sample_fn or q_sample)(x0, t, eps, self.schedule.alpha_bar)
        y = self._train_labels(y, b, dev, gdev, generator)
        eps_pred = self.denoiser(x_t, t, y)  # (B, ...)
        loss = (self.loss_fn or epsilon_loss)(eps_pred, eps)
        logs = {"eps_mse": (eps_pred - eps).detach().pow(2).mean().item()}  # L_simple by the reference formula
        return loss, logs

    def _train_labels(self, y: Tensor | None, b: int, dev, gdev, generator) -> Tensor | None:
        """The labels the denoiser trains with: None (unconditional), or y with each dropped to the null class
        with probability p_uncond (all null when the batch has no labels)."""
        if self.config.num_classes == 0:
            return None
        null = torch.full((b,), self.config.num_classes, dtype=torch.long, device=dev)
        if y is None:
            return null
        drop = torch.rand(b, generator=generator, device=gdev).to(dev) < self.config.p_uncond
        return torch.where(drop, null, y.long())

    # -- sampling
    def predict_eps(
        self, x_t: Tensor, t: Tensor | int, y: Tensor | None = None, guidance_scale: float = 0.0
    ) -> Tensor:
        """eps_theta(x_t, t, y) for one timestep t (int) or per-example t (B,), with classifier-free guidance
        (`guided_eps`) when guidance_scale != 0; y None is the null class (the unconditional model)."""
        n = x_t.shape[0]
        t = torch.as_tensor(t, dtype=torch.long, device=x_t.device)
        t = t.expand(n) if t.dim() == 0 else t
        if guidance_scale == 0.0:
            return self.denoiser(x_t, t, y)
        if y is None:
            raise ValueError("classifier-free guidance needs labels y (guidance_scale != 0)")
        null = torch.full_like(y, self.config.num_classes)
        eps_both = self.denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))  # (2B, ...)
        eps_cond, eps_uncond = eps_both.chunk(2)
        return (self.guidance_fn or guided_eps)(eps_cond, eps_uncond, guidance_scale)

    def make_scheduler(self, sampler: str = "ddpm", num_steps: int | None = None) -> DDPMScheduler | DDIMScheduler:
        """A scheduler for this model's schedule with `num_steps` timesteps (default: all T)."""
        clip = 1.0 if (self.config.kind == "image" and self.config.clip_x0) else None
        if sampler == "ddpm":
            scheduler = DDPMScheduler(self.schedule, clip_sample=clip, step_fn=self.ddpm_step_fn)
        elif sampler == "ddim":
            scheduler = DDIMScheduler(self.schedule, clip_sample=clip, step_fn=self.ddim_step_fn)
        else:
            raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
        scheduler.set_timesteps(num_steps)
        return scheduler

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        y: Tensor | int | None = None,
        guidance_scale: float = 0.0,
        sampler: str = "ddpm",
        num_steps: int | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """n samples: images (n, C, H, W) clipped to [0, 1], or raw points (n, d).

        y: labels (n,) or one int for all (conditional model; None samples the null class, unconditionally);
        guidance_scale: w of `guided_eps`; sampler "ddpm" (ancestral) or "ddim" (eta = 0: deterministic);
        num_steps: timesteps used (default all T; fewer are evenly spaced from T - 1 down to 0).

        With return_trajectory=True, returns (samples, trajectory) where, for the S steps of the scheduler,
            trajectory["x_t"]     (S + 1, n, ...): x_t[0] is the starting noise x_T, x_t[i + 1] the state after
                                  step i, x_t[S] the final (unclipped) sample;
            trajectory["x0_pred"] (S, n, ...): the model's estimate of x0 at step i (from x_t[i]);
            trajectory["t"]       (S,) int64: the timestep of step i (decreasing, ends at 0).
        Both are in data units (images (x + 1) / 2, not clipped: noisy states lie outside [0, 1]).
        """
        if sampler == "ddpm" and eta != 0.0:
            raise ValueError("eta applies to the DDIM sampler only; use sampler='ddim'")
        ref = self.schedule.alpha_bar
        y = self._labels(y, n, ref.device)
        scheduler = self.make_scheduler(sampler, num_steps)
        step_kwargs = {"eta": eta} if sampler == "ddim" else {}

        x = randn_like_with(ref.new_empty(n, *self.data_shape), generator)  # x_T ~ N(0, I)
        if return_trajectory:  # preallocated: S small tensors kept alive, then stacked, fragment the heap badly
            S = len(scheduler.timesteps)
            states, x0_preds = x.new_empty((S + 1, *x.shape)), x.new_empty((S, *x.shape))
            states[0] = x
        for i, t in enumerate(scheduler.timesteps):
            eps = self.predict_eps(x, int(t), y, guidance_scale)
            x, x0_pred = scheduler.step(eps, t, x, generator=generator, **step_kwargs)
            if return_trajectory:
                states[i + 1] = x
                x0_preds[i] = x0_pred

        samples = self.to_data_space(x)
        if self.config.kind == "image":
            samples = samples.clamp(0.0, 1.0)
        if not return_trajectory:
            return samples
        trajectory = {
            "x_t": self.to_data_space(states),  # (S+1, n, ...)
            "x0_pred": self.to_data_space(x0_preds),  # (S, n, ...)
            "t": scheduler.timesteps.clone(),  # (S,)
        }
        return samples, trajectory

    @torch.no_grad()
    def forward_trajectory(
        self, x0: Tensor, ts: Sequence[int] | Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """The forward (noising) view: x_t ~ q(x_t | x0) at each t of ts, with ONE eps shared by all t, so the
        frames fade smoothly from the data to noise (each frame has the exact marginal of eq. 4; jointly they
        are not the Markov chain). x0 (B, ...) in data units -> (len(ts), B, ...) in data units, not clipped."""
        x0m = self.to_model_space(x0.to(self.schedule.alpha_bar.device))  # (B, ...)
        eps = randn_like_with(x0m, generator)
        ts = torch.as_tensor(ts, dtype=torch.long).flatten()
        if ts.numel() == 0 or ts.min() < 0 or ts.max() >= self.config.T:
            raise ValueError(f"ts must be one or more timesteps in [0, T = {self.config.T})")
        frames = [q_sample(x0m, t.expand(x0m.shape[0]), eps, self.schedule.alpha_bar) for t in ts]
        return self.to_data_space(torch.stack(frames))  # (len(ts), B, ...)
