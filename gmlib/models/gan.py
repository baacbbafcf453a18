"""Generative adversarial networks (Goodfellow et al., 2014): DCGAN (Radford et al., 2016), WGAN-GP (Gulrajani et
al., 2017), spectral normalisation (Miyato et al., 2018), hinge loss, conditional GAN (Mirza and Osindero, 2014).

Notation as in course lesson 03:
    x (B, ...) data: 2D points (B, 2) or images (B, C, H, W); z (B, d) latent, z ~ N(0, I); y (B,) labels
    G(z, y) generator, D(x, y) discriminator; D returns a logit (or a critic score) l per example, (B,),
    and D's probability that x is real is sigmoid(l)
    images live in [0, 1] outside the model and in [-1, 1] inside (x' = 2x - 1, G ends in tanh);
    2D points are used as they are

Losses, all means over the batch, written with softplus(t) = log(1 + exp(t)) so that
log sigmoid(l) = -softplus(-l) and log(1 - sigmoid(l)) = -softplus(l) stay finite for large logits:
    minimax D:        -E[log D(x)] - E[log(1 - D(G(z)))]      = E[softplus(-l_real)] + E[softplus(l_fake)]
    minimax G:         E[log(1 - D(G(z)))]                    = -E[softplus(l_fake)]    (saturates: gradient
                                                                 sigmoid(l_fake) -> 0 when D rejects the fakes)
    non-saturating G: -E[log D(G(z))]                         = E[softplus(-l_fake)]    (gradient -> 1 there)
    WGAN critic:       E[f(G(z))] - E[f(x)] + lambda * GP,    GP = E[(||grad_xhat f(xhat)||_2 - 1)^2],
                       xhat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per example
    WGAN G:           -E[f(G(z))]
    hinge D:           E[max(0, 1 - f(x))] + E[max(0, 1 + f(G(z)))];  hinge G: -E[f(G(z))]

Spectral normalisation divides each weight of D by an estimate of its largest singular value (one power
iteration per training forward pass), so each layer is 1-Lipschitz.

The pieces a lesson teaches are small pure functions of D's outputs; `GAN` takes replacements for them, so a
student trains a real model with their own code: `GAN(config, d_loss_fn=mine, g_loss_fn=mine)`. The two halves
of a training round are functions too (`discriminator_step`, `generator_step`), and `make_gan_step` turns a
student's versions of them into a step function for `fit`.

    model = GAN(GANConfig(data="image", image_shape=(1, 8, 8)))
    history = fit(model, loader, optimizers=model.optimizers(), step_fn=gan_step, max_steps=2000)
    images = model.sample(64, generator=torch.Generator().manual_seed(0))      # (64, 1, 8, 8) in [0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..checkpoints import function_key
from ..data.toy2d import EIGHT_GAUSSIANS_CENTRES, EIGHT_GAUSSIANS_STD
from ..nn import MLP, randn_like_with
from ..train import split_batch

__all__ = [
    "GANConfig",
    "GAN",
    "gan_step",
    "discriminator_step",
    "generator_step",
    "make_gan_step",
    "d_loss_minimax",
    "g_loss_minimax",
    "g_loss_nonsaturating",
    "d_loss_wgan",
    "g_loss_wgan",
    "d_loss_hinge",
    "g_loss_hinge",
    "gradient_penalty",
    "discriminator_accuracy",
    "apply_spectral_norm",
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGANGenerator",
    "DCGANDiscriminator",
    "discriminator_surface",
    "mode_counts",
    "modes_covered",
    "high_quality_fraction",
    "LOSSES",
]


# ---------------------------------------------------------------------------------------------- the losses
def d_loss_minimax(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator loss of the original GAN (and of the non-saturating variant), a scalar:
    -mean log D(x) - mean log(1 - D(G(z))), with D = sigmoid(logits). Logits (B,), (B,) -> ()."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_minimax(fake_logits: Tensor) -> Tensor:
    """The generator's side of the minimax game, mean log(1 - D(G(z))) (minimised; saturates). (B,) -> ()."""
    return -F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss, -mean log D(G(z)). (B,) -> ()."""
    return F.softplus(-fake_logits).mean()


def d_loss_wgan(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """WGAN critic loss (without the penalty): mean f(G(z)) - mean f(x), minus the Wasserstein estimate. -> ()."""
    return fake_scores.mean() - real_scores.mean()


def g_loss_wgan(fake_scores: Tensor) -> Tensor:
    """WGAN generator loss, -mean f(G(z)). (B,) -> ()."""
    return -fake_scores.mean()


def d_loss_hinge(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Hinge discriminator loss, mean max(0, 1 - f(x)) + mean max(0, 1 + f(G(z))). -> ()."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_loss_hinge(fake_scores: Tensor) -> Tensor:
    """Hinge generator loss, -mean f(G(z)) (the same as WGAN's). (B,) -> ()."""
    return -fake_scores.mean()


def _rand_like_with(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """U[0, 1) noise shaped like `x`, drawn on the generator's device then moved (as `randn_like_with`)."""
    if generator is None:
        return torch.rand_like(x)
    return torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty E[(||grad_xhat critic(xhat)||_2 - 1)^2] at xhat = eps real + (1 - eps) fake, a scalar.

    critic: (B, ...) -> (B,) scores; real, fake (B, ...); eps ~ U[0, 1] is one number per example. The graph
    of the gradient is kept (create_graph=True), so the penalty can be minimised over the critic's parameters.
    """
    real, fake = real.detach(), fake.detach()
    eps = _rand_like_with(real.new_empty(real.shape[0], *([1] * (real.dim() - 1))), generator)  # (B, 1, ...)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (B, ...)
    scores = critic(x_hat)  # (B,)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)  # (B, ...)
    norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)  # (B,)
    return (norm - 1.0).pow(2).mean()


def discriminator_accuracy(real_logits: Tensor, fake_logits: Tensor) -> float:
    """Fraction of real examples with logit > 0 and fake ones with logit < 0, over both sets together."""
    correct = (real_logits > 0).sum() + (fake_logits < 0).sum()
    return (correct.float() / (real_logits.numel() + fake_logits.numel())).item()


LossPair = tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]
LOSSES: dict[str, LossPair] = {
    "minimax": (d_loss_minimax, g_loss_minimax),
    "nonsaturating": (d_loss_minimax, g_loss_nonsaturating),
    "wgan-gp": (d_loss_wgan, g_loss_wgan),
    "hinge": (d_loss_hinge, g_loss_hinge),
}


# ---------------------------------------------------------------------------------------------- the networks
def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise the weight of every Linear and Conv layer inside `module` (in place); returns it."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            _spectral_norm(layer)
    return module


def _with_one_hot(h: Tensor, y: Tensor | None, num_classes: int) -> Tensor:
    """Append one_hot(y) to features (B, F) -> (B, F + K), or as K constant channels to (B, C, H, W)."""
    if num_classes == 0:
        return h
    if y is None:
        raise ValueError("this GAN is conditional (num_classes > 0): pass the labels y")
    onehot = F.one_hot(y.long().to(h.device), num_classes).to(h.dtype)  # (B, K)
    if h.dim() == 4:
        onehot = onehot[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])  # (B, K, H, W)
    return torch.cat([h, onehot], dim=1)


class MLPGenerator(nn.Module):
    """G for 2D data: [z, one_hot(y)] (B, d + K) -> x (B, data_dim), ReLU MLP, linear output."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_dim: int, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.net = MLP(latent_dim + num_classes, hidden, data_dim, activation=nn.ReLU)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(_with_one_hot(z, y, self.num_classes))  # (B, data_dim)


class MLPDiscriminator(nn.Module):
    """D for 2D data: [x, one_hot(y)] (B, data_dim + K) -> logit (B,), LeakyReLU(0.2) MLP."""

    def __init__(self, data_dim: int, hidden: Sequence[int], num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.net = MLP(data_dim + num_classes, hidden, 1, activation=partial(nn.LeakyReLU, 0.2))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(_with_one_hot(x, y, self.num_classes)).squeeze(1)  # (B,)


class DCGANGenerator(nn.Module):
    """DCGAN generator: [z, one_hot(y)] -> Linear -> (2c, H/4, W/4) -> two stride-2 transposed convolutions
    -> (C, H, W) in [-1, 1] (tanh); batch norm and ReLU between layers. H and W must be multiples of 4
    (8x8 digits start from 2x2, 28x28 MNIST from 7x7)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], channels: int = 64, num_classes: int = 0):
        super().__init__()
        c_out, h, w = image_shape
        self.num_classes = num_classes
        self.base = (2 * channels, h // 4, w // 4)
        self.project = nn.Linear(latent_dim + num_classes, math.prod(self.base), bias=False)
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1, bias=False),  # (B, c, H/2, W/2)
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, c_out, 4, stride=2, padding=1),  # (B, C, H, W)
            nn.Tanh(),
        )

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.project(_with_one_hot(z, y, self.num_classes)).view(-1, *self.base)  # (B, 2c, H/4, W/4)
        return self.net(h)  # (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: [x, one_hot(y) as channels] (B, C + K, H, W) -> two stride-2 convolutions with
    LeakyReLU(0.2) -> (2c, H/4, W/4) -> Linear -> logit (B,). No batch norm: the gradient penalty is a
    per-example quantity, and batch statistics would mix the examples (Gulrajani et al., section 4)."""

    def __init__(self, image_shape: tuple[int, int, int], channels: int = 64, num_classes: int = 0):
        super().__init__()
        c_in, h, w = image_shape
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Conv2d(c_in + num_classes, channels, 4, stride=2, padding=1),  # (B, c, H/2, W/2)
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),  # (B, 2c, H/4, W/4)
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * channels * (h // 4) * (w // 4), 1),
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(_with_one_hot(x, y, self.num_classes)).squeeze(1)  # (B,)


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class GANConfig:
    data: str = "image"  # "2d" (MLPs on points) or "image" (DCGAN convolutions)
    data_dim: int = 2  # "2d": dimension of a point
    image_shape: tuple[int, int, int] = (1, 8, 8)  # "image": (C, H, W), H and W multiples of 4
    latent_dim: int = 32
    hidden: tuple[int, ...] = (128, 128, 128)  # "2d": hidden widths of G and of D
    channels: int = 64  # "image": width of the first conv layer of D and the last of G
    loss: str = "nonsaturating"  # "minimax", "nonsaturating", "wgan-gp" or "hinge"
    gp_weight: float = 10.0  # lambda of the gradient penalty (used by loss="wgan-gp")
    n_critic: int = 1  # discriminator steps per generator step (5 in WGAN-GP)
    spectral_norm: bool = False  # spectral normalisation on every layer of D
    num_classes: int = 0  # > 0: conditional GAN, G and D see one_hot(y)
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's (beta1, beta2); WGAN-GP used (0.0, 0.9)


class GAN(nn.Module):
    """A generator `G` and a discriminator `D`, trained with `gan_step` (two optimisers from `optimizers()`).

    `loss(batch)` is D's loss plus G's loss on one batch (for monitoring and the model contract; training
    needs the alternating updates of `gan_step`). batch = x or (x, y), x in data units (images in [0, 1]).
    """

    def __init__(
        self,
        config: GANConfig,
        *,
        d_loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        g_loss_fn: Callable[[Tensor], Tensor] | None = None,
        gradient_penalty_fn: Callable[..., Tensor] | None = None,
    ):
        super().__init__()
        if config.data not in ("2d", "image"):
            raise ValueError(f"data must be '2d' or 'image', got {config.data!r}")
        if config.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(map(repr, LOSSES))}, got {config.loss!r}")
        if config.n_critic < 1:
            raise ValueError(f"n_critic must be at least 1, got {config.n_critic}")
        self.config = config
        self.d_loss_fn = d_loss_fn
        self.g_loss_fn = g_loss_fn
        self.gradient_penalty_fn = gradient_penalty_fn
        k = config.num_classes
        if config.data == "2d":
            self.G = MLPGenerator(config.latent_dim, config.hidden, config.data_dim, k)
            self.D = MLPDiscriminator(config.data_dim, config.hidden, k)
        else:
            _, h, w = config.image_shape
            if h % 4 or w % 4:
                raise ValueError(f"image height and width must be multiples of 4, got {config.image_shape}")
            self.G = DCGANGenerator(config.latent_dim, config.image_shape, config.channels, k)
            self.D = DCGANDiscriminator(config.image_shape, config.channels, k)
        if config.spectral_norm:
            apply_spectral_norm(self.D)

    # -- helpers
    def cache_key(self) -> dict:
        """What besides the config determines the trained weights: the injected functions' code."""
        return {name: function_key(getattr(self, name)) for name in ("d_loss_fn", "g_loss_fn", "gradient_penalty_fn")}

    def to_model_space(self, x: Tensor) -> Tensor:
        """Data units -> what D sees: images [0, 1] -> [-1, 1]; 2D points unchanged."""
        return 2.0 * x - 1.0 if self.config.data == "image" else x

    def to_data_space(self, x: Tensor) -> Tensor:
        """What G makes -> data units: images [-1, 1] -> [0, 1]; 2D points unchanged."""
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0) if self.config.data == "image" else x

    def split_batch(self, batch) -> tuple[Tensor, Tensor | None]:
        """batch = x or (x, y) in data units -> (x in model space, y or None)."""
        x, y = split_batch(batch)
        if self.config.num_classes == 0:
            y = None
        return self.to_model_space(x), y

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I), (n, latent_dim), on the parameters' device."""
        ref = next(self.parameters())
        return randn_like_with(ref.new_empty(n, self.config.latent_dim), generator)

    def _labels(self, n: int, y: Tensor | int | None) -> Tensor | None:
        if self.config.num_classes == 0:
            return None
        device = next(self.parameters()).device
        if y is None:  # every class in turn: 0, 1, ..., K - 1, 0, 1, ...
            return torch.arange(n, device=device) % self.config.num_classes
        y = torch.as_tensor(y, device=device).long()
        if y.dim() == 0:
            return y.expand(n)
        if y.shape != (n,):
            raise ValueError(f"expected {n} labels (or one int for all), got labels of shape {tuple(y.shape)}")
        return y

    # -- the losses of one batch
    def discriminator_loss(self, real: Tensor, fake: Tensor, y: Tensor | None = None) -> tuple[Tensor, dict]:
        """D's loss (with the gradient penalty for "wgan-gp") on real and fake examples in model space.

        Logs d_real, d_fake (mean sigmoid of D's outputs) and d_acc (threshold 0); for a WGAN critic, whose
        scores have no fixed offset, these are only indicative, and "wasserstein" is the quantity to watch.
        """
        d_fn, _ = LOSSES[self.config.loss]
        real_logits, fake_logits = self.D(real, y), self.D(fake, y)  # (B,), (B,)
        loss = (self.d_loss_fn or d_fn)(real_logits, fake_logits)
        logs = {
            "d_real": torch.sigmoid(real_logits).mean().item(),  # mean D(x)
            "d_fake": torch.sigmoid(fake_logits).mean().item(),  # mean D(G(z))
            "d_acc": discriminator_accuracy(real_logits, fake_logits),
        }
        if self.config.loss == "wgan-gp":
            gp = (self.gradient_penalty_fn or gradient_penalty)(lambda x: self.D(x, y), real, fake)
            loss = loss + self.config.gp_weight * gp
            logs["gp"] = gp.item()
            logs["wasserstein"] = (real_logits.mean() - fake_logits.mean()).item()
        logs["d_loss"] = loss.item()
        return loss, logs

    def generator_loss(self, fake: Tensor, y: Tensor | None = None) -> tuple[Tensor, dict]:
        """G's loss on fake examples in model space (gradients flow through D into G)."""
        _, g_fn = LOSSES[self.config.loss]
        loss = (self.g_loss_fn or g_fn)(self.D(fake, y))
        return loss, {"g_loss": loss.item()}

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        """D's loss + G's loss on one batch, a differentiable scalar (monitoring; train with `gan_step`)."""
        real, y = self.split_batch(batch)
        fake = self.G(self.sample_latent(real.shape[0]), y)
        d_loss, d_logs = self.discriminator_loss(real, fake.detach(), y)
        g_loss, g_logs = self.generator_loss(fake, y)
        return d_loss + g_loss, {**d_logs, **g_logs}

    def optimizers(self) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        """(opt_g, opt_d): Adam on G's and on D's parameters with the config's learning rates and betas."""
        c = self.config
        opt_g = torch.optim.Adam(self.G.parameters(), lr=c.lr_g, betas=c.betas)
        opt_d = torch.optim.Adam(self.D.parameters(), lr=c.lr_d, betas=c.betas)
        return opt_g, opt_d

    @torch.no_grad()
    def sample(self, n: int, *, y: Tensor | int | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n samples G(z), z ~ N(0, I), in data units: images (n, C, H, W) in [0, 1], points (n, data_dim).

        A conditional model takes labels y (n,) or one int for all; without them it cycles through the classes.
        """
        z = self.sample_latent(n, generator=generator)  # (n, d)
        return self.to_data_space(self.G(z, self._labels(n, y)))


def gan_step(model: GAN, batch, optimizers: Sequence[torch.optim.Optimizer]) -> dict[str, float]:
    """One round of training for `fit(..., step_fn=gan_step)`: n_critic updates of D, then one of G.

    The n_critic discriminator updates reuse this batch of real examples, each against fresh fakes.
    optimizers = (opt_g, opt_d) as returned by `model.optimizers()`.
    """
    opt_g, opt_d = optimizers
    real, y = model.split_batch(batch)  # (B, ...) in model space
    n = real.shape[0]
    for _ in range(model.config.n_critic):
        with torch.no_grad():
            fake = model.G(model.sample_latent(n), y)
        d_loss, d_logs = model.discriminator_loss(real, fake, y)
        if not torch.isfinite(d_loss):
            raise FloatingPointError(f"discriminator loss became {d_loss.item()}: lower the learning rates")
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    # G's update: D's parameters need no gradients (saves a backward pass through D's weights)
    flags = [p.requires_grad for p in model.D.parameters()]
    model.D.requires_grad_(False)
    try:
        fake = model.G(model.sample_latent(n), y)
        g_loss, g_logs = model.generator_loss(fake, y)
        if not torch.isfinite(g_loss):
            raise FloatingPointError(f"generator loss became {g_loss.item()}: lower the learning rates")
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    finally:
        for p, flag in zip(model.D.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return {"loss": d_logs["d_loss"] + g_logs["g_loss"], **d_logs, **g_logs}


def discriminator_step(
    G: nn.Module,
    D: nn.Module,
    opt_d: torch.optim.Optimizer,
    d_loss_fn: Callable[[Tensor, Tensor], Tensor],
    real: Tensor,
    z: Tensor,
    y: Tensor | None = None,
) -> float:
    """One update of D: fakes G(z, y) made without a graph into G, loss d_loss_fn(D(real, y), D(fake, y)),
    zero D's gradients, backward, opt_d.step(). real (B, ...) in model space, z (B, d), y (B,) or None.
    Returns the loss before the update (a float). G's parameters and gradients are left alone."""
    with torch.no_grad():
        fake = G(z, y)  # (B, ...)
    loss = d_loss_fn(D(real, y), D(fake, y))
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()
    return loss.item()


def generator_step(
    G: nn.Module,
    D: nn.Module,
    opt_g: torch.optim.Optimizer,
    g_loss_fn: Callable[[Tensor], Tensor],
    z: Tensor,
    y: Tensor | None = None,
) -> float:
    """One update of G: loss g_loss_fn(D(G(z, y), y)) with the gradient flowing through D into G, zero G's
    gradients, backward, opt_g.step(). z (B, d), y (B,) or None. Returns the loss before the update (a float).
    D's parameters are not changed (and, to save a backward pass, get no gradients)."""
    flags = [p.requires_grad for p in D.parameters()]
    D.requires_grad_(False)
    try:
        loss = g_loss_fn(D(G(z, y), y))
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
    finally:
        for p, flag in zip(D.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return loss.item()


def make_gan_step(
    discriminator_step_fn: Callable[..., float] | None = None,
    generator_step_fn: Callable[..., float] | None = None,
) -> Callable[[GAN, object, Sequence[torch.optim.Optimizer]], dict[str, float]]:
    """A step function for `fit` built from (a student's) `discriminator_step` and `generator_step`: n_critic
    D updates against fresh fakes, then one G update, with the model's losses (injected, or those of
    config.loss). Not for "wgan-gp", whose D update needs the gradient penalty: use `gan_step` there.

        fit(model, loader, optimizers=model.optimizers(), step_fn=make_gan_step(my_d_step, my_g_step))
    """
    d_step = discriminator_step_fn or discriminator_step
    g_step = generator_step_fn or generator_step

    def step(model: GAN, batch, optimizers: Sequence[torch.optim.Optimizer]) -> dict[str, float]:
        if model.config.loss == "wgan-gp":
            raise ValueError("make_gan_step's D update has no gradient penalty: train loss='wgan-gp' with gan_step")
        opt_g, opt_d = optimizers
        d_fn, g_fn = LOSSES[model.config.loss]
        d_fn, g_fn = model.d_loss_fn or d_fn, model.g_loss_fn or g_fn
        real, y = model.split_batch(batch)  # (B, ...) in model space
        n = real.shape[0]
        for _ in range(model.config.n_critic):
            d_loss = float(d_step(model.G, model.D, opt_d, d_fn, real, model.sample_latent(n), y))
        g_loss = float(g_step(model.G, model.D, opt_g, g_fn, model.sample_latent(n), y))
        for name, value in (("discriminator", d_loss), ("generator", g_loss)):
            if not math.isfinite(value):
                raise FloatingPointError(f"{name} loss became {value}: lower the learning rates")
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    return step


# ---------------------------------------------------------------------------------------------- 2D diagnostics
@torch.no_grad()
def discriminator_surface(
    model: GAN,
    xlim: tuple[float, float] = (-3.0, 3.0),
    ylim: tuple[float, float] = (-3.0, 3.0),
    resolution: int = 100,
    *,
    y: int | None = None,
    probability: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """D on a grid over the plane, for a 2D model: (xs (R,), ys (R,), values (R, R)) on the CPU.

    values[i, j] = D's probability sigmoid(D(xs[j], ys[i])) that the point is real (the raw logit or critic
    score with probability=False), the layout `contourf(xs, ys, values)` and `imshow(origin="lower")` expect.
    A conditional model needs the class y.
    """
    if model.config.data != "2d" or model.config.data_dim != 2:
        raise ValueError("discriminator_surface needs a model of 2D points (data='2d', data_dim=2)")
    device = next(model.parameters()).device
    xs = torch.linspace(xlim[0], xlim[1], resolution)
    ys = torch.linspace(ylim[0], ylim[1], resolution)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (R, R) each
    points = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1).to(device)  # (R*R, 2)
    if model.config.num_classes and y is None:
        raise ValueError("this GAN is conditional: pass the class y")
    labels = model._labels(points.shape[0], y)
    values = model.D(points, labels)  # (R*R,)
    if probability:
        values = torch.sigmoid(values)
    return xs, ys, values.view(resolution, resolution).cpu()


def _nearest_centre(samples: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """Distance to and index of the nearest centre: (N, D), (K, D) -> (N,), (N,)."""
    dist = torch.cdist(samples.float(), centres.to(samples.device).float())  # (N, K)
    return dist.min(dim=1)


def mode_counts(
    samples: Tensor,
    centres: Tensor = EIGHT_GAUSSIANS_CENTRES,
    threshold: float = 3 * EIGHT_GAUSSIANS_STD,
) -> Tensor:
    """Number of high-quality samples (within `threshold` of their nearest centre) at each centre, (K,)."""
    dist, nearest = _nearest_centre(samples, centres)
    return torch.bincount(nearest[dist <= threshold], minlength=centres.shape[0]).cpu()


def modes_covered(
    samples: Tensor,
    centres: Tensor = EIGHT_GAUSSIANS_CENTRES,
    threshold: float = 3 * EIGHT_GAUSSIANS_STD,
    *,
    min_fraction: float = 0.01,
) -> int:
    """How many modes hold at least `min_fraction` of the samples as high-quality samples (a generator that
    covers all K modes evenly puts 1/K there; stray samples near a mode do not count as covering it)."""
    counts = mode_counts(samples, centres, threshold)
    return int((counts >= max(1.0, min_fraction * samples.shape[0])).sum())


def high_quality_fraction(
    samples: Tensor,
    centres: Tensor = EIGHT_GAUSSIANS_CENTRES,
    threshold: float = 3 * EIGHT_GAUSSIANS_STD,
) -> float:
    """Fraction of samples within `threshold` (default 3 standard deviations) of their nearest centre."""
    dist, _ = _nearest_centre(samples, centres)
    return (dist <= threshold).float().mean().item()
