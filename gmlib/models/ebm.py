"""Energy-based models trained by contrastive divergence with short-run Langevin dynamics (LeCun et al., 2006,
"A tutorial on energy-based learning"; Du and Mordatch, 2019, "Implicit generation and generalization in
energy-based models"; Nijkamp et al., 2019, "Learning non-convergent non-persistent short-run MCMC toward
energy-based model").

Notation as in course lesson 06:
    x (B, ...) data: points (B, 2) or images (B, C, H, W) in [0, 1]
    E_theta(x) (B,) energy, a neural network;  p_theta(x) = exp(-E_theta(x)) / Z_theta
    Z_theta = integral of exp(-E_theta(x)) dx: intractable, never computed

Maximum likelihood gradient (the log Z term becomes an expectation under the model):
    grad_theta [-log p_theta(x+)] = grad_theta E_theta(x+) - E_{x- ~ p_theta}[grad_theta E_theta(x-)]
so the contrastive-divergence surrogate, whose autograd gradient is a one-sample estimate of it, is
    L_CD = mean E_theta(x+) - mean E_theta(x-)                  x- held fixed (no gradient through the chain)
plus alpha * mean(E(x+)^2 + E(x-)^2), which keeps the energies near zero (Du and Mordatch's regulariser).

Negative samples x- come from Langevin dynamics on the energy:
    x_{t+1} = x_t - step_size * grad_x E(x_t) + noise_scale * eps_t,        eps_t ~ N(0, I)
- textbook coupling: noise_scale = sqrt(2 * step_size). Then, as step_size -> 0 and t -> infinity, x_t is
  distributed as p(x) = exp(-E(x)) / Z (for E = |x|^2 / 2 the chain has stationary variance 1 / (1 - step_size/2),
  so it approaches N(0, I) as the step shrinks).
- decoupled practice (Du and Mordatch; Nijkamp et al.): a large step_size with a small noise_scale, run for a
  few tens of steps from noise or from a replay buffer. Such chains do not converge to p_theta; the model
  learns an energy whose SHORT-RUN chains produce data-like samples, which is what sampling then uses.

Replay buffer (Du and Mordatch): chains start from past negative samples, each replaced by fresh uniform noise
with probability `reinit_prob`, so a few steps per update add up to long chains over training.

Images: the data, the chains and the buffer all live in [0, 1] (the pixel range of `load_digits`); the conv
net sees 2 x - 1 so its input is centred, and image chains are clamped to [0, 1] after every step. Points
(kind "2d") are unconstrained; their chains start from uniform noise on [-init_scale, init_scale]^d.

The textbook form of one step, as course lesson 06 writes it with a single step size eps, is
    x_{t+1} = x_t - (eps / 2) grad_x E(x_t) + sqrt(eps) * eps_t          (`textbook_langevin_step`)
which is the step above with step_size = eps / 2 and noise_scale = sqrt(eps); `from_textbook_step` turns a step
written that way into one the model can run.

The lesson's pieces are small pure functions (`langevin_step`, `textbook_langevin_step`, `langevin_sample`,
`contrastive_divergence`, `replay_draw`); the model takes replacements, so a student trains a real model with
their own pieces: `EBM(config, langevin_step_fn=from_textbook_step(mine), cd_loss_fn=mine, replay_draw_fn=mine)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..checkpoints import function_key
from ..nn import MLP, randn_like_with

__all__ = [
    "EBMConfig",
    "EBM",
    "ConvEnergy",
    "ReplayBuffer",
    "langevin_step",
    "textbook_langevin_step",
    "from_textbook_step",
    "langevin_sample",
    "contrastive_divergence",
    "replay_draw",
    "energy_grid",
]

EnergyFn = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------------------------------------- the pieces
def _energy_grad(x: Tensor, energy_fn: EnergyFn) -> Tensor:
    """grad_x sum_b E(x_b): (B, ...) -> (B, ...), computed even inside `torch.no_grad()`; no graph is kept."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy_fn(x).sum(), x)
    return grad


def langevin_step(
    x: Tensor, energy_fn: EnergyFn, step_size: float, noise_scale: float, *, generator: torch.Generator | None = None
) -> Tensor:
    """One Langevin step x - step_size * grad_x E(x) + noise_scale * eps, eps ~ N(0, I): (B, ...) -> (B, ...).

    `energy_fn` maps (B, ...) -> (B,). Textbook Langevin uses noise_scale = sqrt(2 * step_size) (samples
    exp(-E) in the small-step limit); EBM training often decouples the two (see the module docstring).
    The result is detached: no gradient flows through a chain.
    """
    grad = _energy_grad(x, energy_fn)  # (B, ...)
    return (x.detach() - step_size * grad + noise_scale * randn_like_with(x, generator)).detach()


def textbook_langevin_step(x: Tensor, energy_fn: EnergyFn, step_size: float, *,
                           generator: torch.Generator | None = None) -> Tensor:
    """One textbook Langevin step x - (step_size / 2) grad_x E(x) + sqrt(step_size) * eps: (B, ...) -> (B, ...).

    For small step_size its stationary distribution approaches exp(-E) / Z. Detached, like `langevin_step`
    (which this is, with step_size / 2 and noise sqrt(step_size)).
    """
    return langevin_step(x, energy_fn, 0.5 * step_size, math.sqrt(step_size), generator=generator)


def from_textbook_step(step_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Adapt a textbook step `step_fn(x, energy_fn, eps, *, generator)` (x - eps/2 grad E + sqrt(eps) noise) to
    the (x, energy_fn, step_size, noise_scale, *, generator) form that `langevin_sample` and `EBM` call.

    The model's step_size is eps / 2, so the adapted step passes eps = 2 * step_size; it refuses a noise_scale
    other than sqrt(2 * step_size), which a textbook step cannot honour. The result carries `step_fn`'s code
    (functools.wraps), so a model's cache key follows the wrapped function.
    """

    @functools.wraps(step_fn)
    def step(x: Tensor, energy_fn: EnergyFn, step_size: float, noise_scale: float, **kwargs) -> Tensor:
        if not math.isclose(noise_scale, math.sqrt(2.0 * step_size), rel_tol=1e-6, abs_tol=1e-12):
            raise ValueError(f"a textbook Langevin step needs noise_scale = sqrt(2 * step_size) = "
                             f"{math.sqrt(2.0 * step_size):.6g}, got {noise_scale:.6g}")
        return step_fn(x, energy_fn, 2.0 * step_size, **kwargs)

    return step


def langevin_sample(
    energy_fn: EnergyFn,
    x0: Tensor,
    num_steps: int,
    step_size: float,
    noise_scale: float,
    *,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    clamp: tuple[float, float] | None = None,
    step_fn: Callable[..., Tensor] | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Run `num_steps` Langevin steps from x0 (B, ...); returns x_T (B, ...).

    clamp:   (low, high) to clip the state after every step (images in [0, 1]), or None.
    step_fn: a replacement for `langevin_step` with the same signature.
    With return_trajectory=True returns (x_T, trajectory) with trajectory (num_steps + 1, B, ...): x0 first.
    Steps run with gradients enabled (a step needs grad_x E), also when the caller is inside torch.no_grad().
    """
    step = step_fn or langevin_step
    kwargs = {} if generator is None else {"generator": generator}
    x = x0.detach()
    if clamp is not None:
        x = x.clamp(*clamp)
    states = [x] if return_trajectory else None
    for _ in range(num_steps):
        with torch.enable_grad():
            x = step(x, energy_fn, step_size, noise_scale, **kwargs)
        x = x.detach()
        if clamp is not None:
            x = x.clamp(*clamp)
        if states is not None:
            states.append(x)
    if states is not None:
        return x, torch.stack(states)  # (T + 1, B, ...)
    return x


def contrastive_divergence(e_pos: Tensor, e_neg: Tensor, alpha: float = 0.0) -> Tensor:
    """The CD surrogate mean E(x+) - mean E(x-) + alpha * mean(E(x+)^2 + E(x-)^2): (B,), (B',) -> scalar.

    Its gradient in theta (x- held fixed) estimates the gradient of the negative log-likelihood.
    """
    return e_pos.mean() - e_neg.mean() + alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())


def replay_draw(samples: Tensor, n: int, reinit_prob: float, low: float, high: float, *,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Start points for n chains from a replay buffer `samples` (N, ...): returns (x0 (n, ...), slots (n,) int64).

    The slots are drawn uniformly with replacement from 0..N-1; x0 holds copies of those stored samples, and each
    row independently (with probability reinit_prob) is replaced by fresh noise uniform on [low, high].
    `samples` is left unchanged. Draw order (for reproducibility with `generator`): slots, the reinit coins,
    then the noise for the rows that restart.
    """
    dev = samples.device
    gen_dev = generator.device if generator is not None else dev
    slots = torch.randint(0, samples.shape[0], (n,), generator=generator, device=gen_dev).to(dev)  # (n,)
    x = samples[slots].clone()  # (n, ...)
    fresh = _rand_with((n,), samples, generator) < reinit_prob  # (n,)
    u = _rand_with((int(fresh.sum()), *samples.shape[1:]), samples, generator)  # (n_fresh, ...)
    x[fresh] = low + (high - low) * u
    return x, slots


class ReplayBuffer(nn.Module):
    """A fixed-size store of past negative samples, initialised with uniform noise on [low, high].

    `draw(n, reinit_prob)` returns n stored samples (chosen uniformly with replacement), each replaced by fresh
    uniform noise with probability reinit_prob, with their slots; `update(slots, x)` writes the chains' end
    points back into those slots. The store is a buffer, so it moves with `.to(device)` and is saved in the
    model's state_dict.
    """

    def __init__(self, size: int, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0):
        super().__init__()
        if size < 1:
            raise ValueError(f"a replay buffer needs size >= 1, got {size}")
        self.low, self.high = float(low), float(high)
        self.register_buffer("samples", low + (high - low) * torch.rand(size, *shape))  # (N, ...)

    def __len__(self) -> int:
        return self.samples.shape[0]

    def uniform(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n fresh noise samples (n, ...) uniform on [low, high], on the buffer's device."""
        u = _rand_with((n, *self.samples.shape[1:]), self.samples, generator)
        return self.low + (self.high - self.low) * u

    def draw(self, n: int, reinit_prob: float = 0.0, *, generator: torch.Generator | None = None
             ) -> tuple[Tensor, Tensor]:
        """n start points (n, ...) and their slots (n,) int64; a fraction reinit_prob is fresh noise (`replay_draw`)."""
        return replay_draw(self.samples, n, reinit_prob, self.low, self.high, generator=generator)

    @torch.no_grad()
    def update(self, slots: Tensor, x: Tensor) -> None:
        """Store x (n, ...) in the given slots (n,)."""
        self.samples[slots.to(self.samples.device)] = x.detach().to(self.samples.dtype)


def _rand_with(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) noise of `shape` on `like`'s device and dtype, drawn from `generator` on its own device."""
    if generator is None:
        return torch.rand(shape, device=like.device, dtype=like.dtype)
    return torch.rand(shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)


class ConvEnergy(nn.Module):
    """A small conv net E(x): images (B, C, H, W) in [0, 1] -> energies (B,). SiLU activations, strided
    3x3 convolutions (each stride-2 layer halves H and W), then a linear layer to one number."""

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...] = (32, 64)):
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = [nn.Conv2d(c, channels[0], 3, padding=1), nn.SiLU()]
        for a, b in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.SiLU()]
            h, w = (h + 1) // 2, (w + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1] * h * w, 128), nn.SiLU(), nn.Linear(128, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(2.0 * x - 1.0)).squeeze(1)  # (B,)


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class EBMConfig:
    kind: str = "2d"  # "2d" (points, MLP energy) or "image" (conv energy, pixels in [0, 1])
    data_dim: int = 2  # kind "2d": dimension of a point
    image_shape: tuple[int, int, int] = (1, 8, 8)  # kind "image"
    hidden: tuple[int, ...] = (128, 128)  # kind "2d": MLP widths
    channels: tuple[int, ...] = (32, 64)  # kind "image": conv widths (each after the first halves H and W)
    step_size: float = 0.01  # Langevin: x <- x - step_size * grad E + noise_scale * eps
    noise_scale: float = math.sqrt(2 * 0.01)  # textbook: sqrt(2 * step_size)
    num_steps: int = 60  # Langevin steps per training update (and the default for sample)
    buffer_size: int = 10_000  # replay buffer; 0: every chain starts from noise (short-run MCMC)
    reinit_prob: float = 0.05  # chance that a chain restarts from noise instead of the buffer
    alpha: float = 0.1  # weight of the energy regulariser alpha * (E+^2 + E-^2)
    init_scale: float = 4.0  # kind "2d": chains start uniform on [-init_scale, init_scale]^d
    data_noise: float = 0.0  # std of Gaussian noise added to positive samples (smooths the data distribution)


class EBM(nn.Module):
    """E(x) by an MLP (kind "2d") or a conv net (kind "image"); `loss(batch)` is the CD surrogate with
    negatives from Langevin chains started in a replay buffer; batch = x or (x, y) (labels ignored).

    Injected pieces (None: gmlib's): langevin_step_fn with `langevin_step`'s signature (wrap a textbook step
    with `from_textbook_step`), cd_loss_fn(e_pos, e_neg, alpha) -> scalar like `contrastive_divergence`, and
    replay_draw_fn(samples, n, reinit_prob, low, high, *, generator) -> (x0, slots) like `replay_draw`.
    """

    def __init__(self, config: EBMConfig, *, langevin_step_fn: Callable[..., Tensor] | None = None,
                 cd_loss_fn: Callable[[Tensor, Tensor, float], Tensor] | None = None,
                 replay_draw_fn: Callable[..., tuple[Tensor, Tensor]] | None = None):
        super().__init__()
        if config.kind not in ("2d", "image"):
            raise ValueError(f"kind must be '2d' or 'image', got {config.kind!r}")
        self.config = config
        self.langevin_step_fn = langevin_step_fn
        self.cd_loss_fn = cd_loss_fn
        self.replay_draw_fn = replay_draw_fn
        if config.kind == "2d":
            self.shape: tuple[int, ...] = (config.data_dim,)
            self.net: nn.Module = MLP(config.data_dim, config.hidden, 1)
            self.low, self.high = -config.init_scale, config.init_scale
        else:
            self.shape = tuple(config.image_shape)
            self.net = ConvEnergy(config.image_shape, config.channels)
            self.low, self.high = 0.0, 1.0
        self.buffer = ReplayBuffer(config.buffer_size, self.shape, self.low, self.high) if config.buffer_size else None

    def cache_key(self) -> dict:
        """What besides the config determines the trained weights: the injected functions' code (the keys of
        the later injection arguments appear only when they are used, so older cache keys stay valid)."""
        key = {"langevin_step_fn": function_key(self.langevin_step_fn)}
        for name in ("cd_loss_fn", "replay_draw_fn"):
            if getattr(self, name) is not None:
                key[name] = function_key(getattr(self, name))
        return key

    @property
    def clamp(self) -> tuple[float, float] | None:
        """The box that image chains are clipped to, or None for points."""
        return (0.0, 1.0) if self.config.kind == "image" else None

    def energy(self, x: Tensor) -> Tensor:
        """E(x): (B, *shape) -> (B,)."""
        e = self.net(x)
        return e.squeeze(-1) if e.dim() == 2 else e  # the MLP gives (B, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.energy(x)

    def _noise(self, n: int, generator: torch.Generator | None) -> Tensor:
        ref = next(self.parameters())
        u = _rand_with((n, *self.shape), ref, generator)  # (n, *shape)
        return self.low + (self.high - self.low) * u

    def langevin(self, x0: Tensor, num_steps: int | None = None, *, generator: torch.Generator | None = None,
                 return_trajectory: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Langevin chains on this model's energy from x0 (B, *shape), with the config's step and noise."""
        cfg = self.config
        steps = cfg.num_steps if num_steps is None else num_steps
        return langevin_sample(self.energy, x0, steps, cfg.step_size, cfg.noise_scale, generator=generator,
                               return_trajectory=return_trajectory, clamp=self.clamp, step_fn=self.langevin_step_fn)

    def negatives(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n negative samples (n, *shape) for a CD update: chains from the replay buffer (or noise), the
        buffer updated with their end points."""
        if self.buffer is not None and self.replay_draw_fn is not None:
            kwargs = {} if generator is None else {"generator": generator}
            x0, slots = self.replay_draw_fn(self.buffer.samples, n, self.config.reinit_prob, self.buffer.low,
                                            self.buffer.high, **kwargs)
        elif self.buffer is not None:
            x0, slots = self.buffer.draw(n, self.config.reinit_prob, generator=generator)
        else:
            x0, slots = self._noise(n, generator), None
        x_neg = self.langevin(x0, generator=generator)
        if self.buffer is not None:
            self.buffer.update(slots, x_neg)
        return x_neg

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        x_pos = batch[0] if isinstance(batch, (list, tuple)) else batch  # (B, *shape)
        if self.config.data_noise > 0:
            x_pos = x_pos + self.config.data_noise * torch.randn_like(x_pos)
        x_neg = self.negatives(x_pos.shape[0])  # (B, *shape), no gradient
        e = self.energy(torch.cat([x_pos, x_neg]))  # (2B,): one pass for both
        e_pos, e_neg = e.chunk(2)
        loss = (self.cd_loss_fn or contrastive_divergence)(e_pos, e_neg, self.config.alpha)
        return loss, {"e_pos": e_pos.mean().item(), "e_neg": e_neg.mean().item(),
                      "cd": (e_pos.mean() - e_neg.mean()).item()}

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, num_steps: int | None = None,
               return_trajectory: bool = False, x0: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """n samples (n, *shape) by Langevin dynamics from uniform noise (or from x0), `num_steps` steps
        (default: the training chains' length). Images are in [0, 1]. With return_trajectory=True returns
        (samples, trajectory) with trajectory (num_steps + 1, n, *shape), the noise first."""
        start = self._noise(n, generator) if x0 is None else x0.to(next(self.parameters()).device)
        return self.langevin(start, num_steps, generator=generator, return_trajectory=return_trajectory)


@torch.no_grad()
def energy_grid(model: EBM | EnergyFn, xlim: tuple[float, float] = (-4.0, 4.0),
                ylim: tuple[float, float] = (-4.0, 4.0), res: int = 100) -> tuple[Tensor, Tensor, Tensor]:
    """The energy of a 2D model on a res x res grid, for contour plots: (X, Y, E), each (res, res) on the CPU,
    indexed [row = y, column = x] as `ax.contourf(X, Y, E)` expects; exp(-E) is the unnormalised density."""
    if isinstance(model, nn.Module):
        params = list(model.parameters())
        device = params[0].device if params else torch.device("cpu")
    else:
        device = torch.device("cpu")
    xs = torch.linspace(*xlim, res, device=device)
    ys = torch.linspace(*ylim, res, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (res, res) each
    points = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)  # (res^2, 2)
    fn = model.energy if isinstance(model, EBM) else model
    e = fn(points).reshape(res, res)
    return grid_x.cpu(), grid_y.cpu(), e.cpu()
