"""Normalizing flows: RealNVP (Dinh, Sohl-Dickstein and Bengio, 2017) with Glow's actnorm and invertible
1x1 convolution (Kingma and Dhariwal, 2018).

Notation as in course lesson 05:
    x (B, D) or (B, C, H, W) data, z = f(x) latent of the same size, base p(z) = N(0, I)
    f = f_K o ... o f_1, every layer invertible; h_0 = x, h_k = f_k(h_{k-1}), z = h_K
    change of variables:  log p(x) = log N(f(x); 0, I) + sum_k log |det d f_k / d h_{k-1}|      (exact, in nats)
    sampling:             z ~ N(0, I), x = f_1^{-1}( ... f_K^{-1}(z))                           (the inverse pass)

Every layer has `forward(x) -> (y, logdet (B,))` (data -> latent direction) and `inverse(y) -> x`.

Affine coupling (RealNVP, eq. 6-9), with a binary mask m (1 = passed through, conditions the rest):
    s = s_net(m * x),  t = t_net(m * x)                     (s soft-clamped: s = c * tanh(s_raw / c))
    y = m * x + (1 - m) * (x * exp(s) + t)
    x = m * y + (1 - m) * (y - t) * exp(-s)                 (s, t computed from m * y = m * x)
    log |det dy/dx| = sum_i (1 - m_i) s_i                   (triangular Jacobian: `coupling_logdet`)
Masks: `checkerboard_mask(h, w)` and `channel_mask(c)` for images, `alternating_masks(dim, n)` for vectors;
consecutive couplings use complementary masks so every coordinate gets transformed. s_net and t_net may be two
networks or the two output halves of one (`SharedST`, the default in `RealNVP`: half the cost).

Actnorm (Glow, sec. 3.1): y = (x + b) * exp(log_s) per channel; b and log_s are set from the first batch so
that y has zero mean and unit variance per channel; log-det = (H * W) * sum_c log_s_c.
Invertible 1x1 convolution (Glow, sec. 3.2): y = W x at every pixel; log-det = (H * W) * log |det W|, with
W = P L (U + diag(sign(s) * exp(log_s))) (LU form: log |det W| = sum log_s) or a plain W and `slogdet`.
Squeeze: (C, H, W) -> (4C, H/2, W/2), a permutation (log-det 0), so channel couplings see spatial neighbours.

Images: dequantisation and bits per dimension, step by step (lesson 05; D = C * H * W pixels, L grey levels):
    1. data:        grey levels k in {0, ..., L-1}, stored as x = k / (L - 1) in [0, 1]
                    (load_digits(variant="continuous"); digits have L = 17).
    2. dequantize:  y = (k + u) / L with u ~ U[0, 1)^D (`dequantize`): y lies in the bin [k/L, (k+1)/L)^D of
                    volume L^-D (load_digits(variant="dequantized") is this, with u drawn once).
    3. bound:       the flow is a density p(y) on [0, 1]^D; the discrete model it implies is
                    P(k) = integral of p over the bin = L^-D * E_u[p((k + u) / L)], so by Jensen
                        log P(k) >= E_u[log p((k + u) / L)] - D log L.
                    A log-density of y is higher than the discrete log-probability by D log L.
    4. logit:       the coupling layers work on the unbounded w = logit(alpha + (1 - 2 alpha) y) (`LogitTransform`,
                    the first layer of an image flow; alpha = config.logit_alpha keeps w finite at y = 0 or 1).
                    Change of variables, per pixel with s = alpha + (1 - 2 alpha) y:
                        dw/dy = (1 - 2 alpha) / (s (1 - s)),
                        log p(y) = log p_flow(w) + sum_i [log(1 - 2 alpha) - log s_i - log(1 - s_i)].
                    That sum is the layer's log-det, so `log_prob(y)` is already the density of y on [0, 1]^D.
    5. bits/dim:    bits_per_dim = -(log p(y) - D log L) / (D log 2)        (`bits_per_dim`)
                    an upper bound on the discrete model's bits/dim; one u per image gives an unbiased
                    estimate of the bound. `loss` is the mean of -log p(y) in nats (without the D log L).
The logit and its log-det are part of the model; the D log L term is not (it only converts units).

The pieces a lesson teaches are small pure functions (`affine_coupling_forward`, `affine_coupling_inverse`,
`coupling_logdet`, the masks, `dequantize`, `bits_per_dim`); `RealNVP` takes replacements for the coupling ones
and for `dequantize`, so a student trains a real flow with their own code: `RealNVP(config, coupling_logdet_fn=mine)`.

Layer by layer (the lesson's explorer): `sample(n, return_trajectory=True)` gives the states of the inverse pass,
`layer_outputs(flow, x)` those of the forward pass, and `stage_log_prob(flow, h, j)` the exact density of the state
after inverting the top j layers (j = 0: the base N(0, I); j = K: the model), which `density_grid` draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..checkpoints import function_key
from ..device import device_of
from ..nn import MLP, randn_like_with

__all__ = [
    "FlowConfig",
    "RealNVP",
    "affine_coupling_forward",
    "affine_coupling_inverse",
    "coupling_logdet",
    "checkerboard_mask",
    "channel_mask",
    "alternating_masks",
    "AffineCoupling",
    "ActNorm",
    "Invertible1x1Conv",
    "Squeeze",
    "LogitTransform",
    "SoftClamp",
    "SharedST",
    "standard_normal_log_prob",
    "dequantize",
    "bits_per_dim",
    "density_grid",
    "layer_outputs",
    "stage_log_prob",
]

Net = Callable[[Tensor], Tensor]


# ---------------------------------------------------------------------------------------------- the pieces
def coupling_logdet(s: Tensor, mask: Tensor) -> Tensor:
    """log |det dy/dx| of an affine coupling: the sum of s over the transformed coordinates (mask == 0).

    s (B, ...) log-scales, mask broadcastable to s (1 = passed through) -> (B,).
    """
    return ((1 - mask) * s).flatten(1).sum(dim=1)


def affine_coupling_forward(
    x: Tensor, mask: Tensor, s_net: Net, t_net: Net, *, logdet_fn: Callable[[Tensor, Tensor], Tensor] = coupling_logdet
) -> tuple[Tensor, Tensor]:
    """y = m * x + (1 - m) * (x * exp(s) + t) with s = s_net(m * x), t = t_net(m * x).

    x (B, ...), mask broadcastable to x -> y (B, ...) and log |det dy/dx| (B,).
    """
    x_cond = mask * x  # the part that conditions the rest (and passes through unchanged)
    s, t = s_net(x_cond), t_net(x_cond)  # (B, ...) each
    y = x_cond + (1 - mask) * (x * torch.exp(s) + t)
    return y, logdet_fn(s, mask)


def affine_coupling_inverse(y: Tensor, mask: Tensor, s_net: Net, t_net: Net) -> Tensor:
    """x = m * y + (1 - m) * (y - t) * exp(-s) with s, t from m * y (= m * x): (B, ...) -> (B, ...)."""
    y_cond = mask * y
    s, t = s_net(y_cond), t_net(y_cond)
    return y_cond + (1 - mask) * (y - t) * torch.exp(-s)


def checkerboard_mask(h: int, w: int, *, invert: bool = False, device=None) -> Tensor:
    """(H, W) float mask, 1 where (row + column) is even (0 there with invert=True); broadcasts over (B, C, H, W)."""
    rows = torch.arange(h, device=device)[:, None]
    cols = torch.arange(w, device=device)[None, :]
    mask = ((rows + cols) % 2 == 0).float()  # (H, W)
    return 1 - mask if invert else mask


def channel_mask(c: int, *, invert: bool = False, device=None) -> Tensor:
    """(C, 1, 1) float mask, 1 on the first c // 2 channels (the others with invert=True); broadcasts over images."""
    mask = (torch.arange(c, device=device) < c // 2).float()[:, None, None]  # (C, 1, 1)
    return 1 - mask if invert else mask


def alternating_masks(dim: int, num_layers: int, *, device=None) -> Tensor:
    """(num_layers, dim) masks for vector data: layer k passes the coordinates i with (i + k) even through.

    For dim = 2: [1, 0], [0, 1], [1, 0], ... so consecutive layers transform complementary coordinates.
    """
    i = torch.arange(dim, device=device)[None, :]
    k = torch.arange(num_layers, device=device)[:, None]
    return ((i + k) % 2 == 0).float()


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over all but the first dimension: (B, ...) -> (B,)."""
    return (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).flatten(1).sum(dim=1)


def dequantize(x_levels: Tensor, levels: int, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantisation: x = k / (levels - 1) in [0, 1] -> y = (k + u) / levels, u ~ U[0, 1), same shape.

    Raises ValueError if x is not on the grid k / (levels - 1) (for example data that is already dequantized).
    """
    if levels < 2:
        raise ValueError(f"levels must be at least 2, got {levels}")
    scaled = x_levels * (levels - 1)
    k = scaled.round()
    if (scaled - k).abs().max() > 1e-3 or k.min() < 0 or k.max() > levels - 1:
        raise ValueError(
            f"dequantize expects grey levels k / {levels - 1} with k in 0..{levels - 1} (e.g. load_digits("
            "variant='continuous')); these values are off that grid (already dequantized?)"
        )
    u = torch.rand(x_levels.shape, generator=generator, dtype=x_levels.dtype,
                   device=generator.device if generator is not None else x_levels.device).to(x_levels.device)
    return (k + u) / levels


def bits_per_dim(log_prob_continuous: Tensor | float, num_dims: int, levels: int) -> Tensor | float:
    """Discrete bits per dimension from the log-density (nats) of dequantized data y in [0, 1]^D:

        bits/dim = -(log p(y) - D log(levels)) / (D log 2)

    (an upper bound on the bits/dim of the discrete model; see the module docstring). Tensor in, tensor out.
    """
    return -(log_prob_continuous - num_dims * math.log(levels)) / (num_dims * math.log(2))


# ---------------------------------------------------------------------------------------------- the layers
def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """A per-channel vector (C,) shaped to broadcast over x (B, C) or (B, C, H, W)."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


def _spatial(x: Tensor) -> int:
    """Number of positions per channel: H * W for images, 1 for vectors."""
    return math.prod(x.shape[2:])


class SoftClamp(nn.Module):
    """s = c * tanh(s_raw / c): about s_raw for small values, never beyond +-c (keeps exp(s) finite)."""

    def __init__(self, bound: float):
        super().__init__()
        self.bound = float(bound)

    def forward(self, s_raw: Tensor) -> Tensor:
        return self.bound * torch.tanh(s_raw / self.bound)


class SharedST(nn.Module):
    """One network whose output, split in two along dim 1, serves as s_net (first half) and t_net (second half):
    `s_net, t_net = SharedST(net).heads()`. Asked for both halves of the same input tensor (what the coupling
    functions do with m * x), it runs the network once; any other input is computed afresh, so the heads always
    behave as two plain functions. `AffineCoupling` clears the memo before and after every call."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self._memo: tuple[Tensor, Tensor] | None = None

    def half(self, h: Tensor, index: int) -> Tensor:
        if self._memo is None or self._memo[0] is not h:
            self._memo = (h, self.net(h))
        return self._memo[1].chunk(2, dim=1)[index]

    def forget(self) -> None:
        self._memo = None

    def heads(self) -> tuple[nn.Module, nn.Module]:
        return _Head(self, 0, owner=True), _Head(self, 1, owner=False)


class _Head(nn.Module):
    """One half of a `SharedST`; the s head registers the shared network, the t head only refers to it (so its
    parameters appear once in `parameters()` and in the state dict)."""

    def __init__(self, shared: SharedST, index: int, *, owner: bool):
        super().__init__()
        if owner:
            self.shared = shared
        else:
            object.__setattr__(self, "shared", shared)  # a plain reference, not a submodule
        self.index = index

    def forward(self, h: Tensor) -> Tensor:
        return self.shared.half(h, self.index)


class AffineCoupling(nn.Module):
    """Affine coupling layer around `affine_coupling_forward` / `affine_coupling_inverse` (or replacements).

    mask (broadcastable to the input): 1 = passed through. s_net, t_net: modules mapping an input-shaped tensor
    to one of the same shape; s_net's output goes through `SoftClamp(scale_clamp)` (None: no clamp).
    forward_fn(x, mask, s_net, t_net) -> (y, logdet), inverse_fn(y, mask, s_net, t_net) -> x and
    logdet_fn(s, mask) -> (B,) replace the reference pieces (logdet_fn is used by the reference forward).
    """

    def __init__(
        self,
        mask: Tensor,
        s_net: nn.Module,
        t_net: nn.Module,
        *,
        scale_clamp: float | None = 3.0,
        forward_fn: Callable[..., tuple[Tensor, Tensor]] | None = None,
        inverse_fn: Callable[..., Tensor] | None = None,
        logdet_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    ):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.s_net = nn.Sequential(s_net, SoftClamp(scale_clamp)) if scale_clamp else s_net
        self.t_net = t_net
        self.forward_fn = forward_fn
        self.inverse_fn = inverse_fn
        self.logdet_fn = logdet_fn

    def _forget(self) -> None:
        for net in (self.s_net, self.t_net):
            for module in net.modules():
                if isinstance(module, _Head):
                    module.shared.forget()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._forget()
        try:
            if self.forward_fn is not None:
                return self.forward_fn(x, self.mask, self.s_net, self.t_net)
            return affine_coupling_forward(x, self.mask, self.s_net, self.t_net,
                                           logdet_fn=self.logdet_fn or coupling_logdet)
        finally:
            self._forget()

    def inverse(self, y: Tensor) -> Tensor:
        self._forget()
        try:
            return (self.inverse_fn or affine_coupling_inverse)(y, self.mask, self.s_net, self.t_net)
        finally:
            self._forget()


class ActNorm(nn.Module):
    """y = (x + bias) * exp(log_scale) per channel, initialised from the first batch it sees in `forward`
    so that y has zero mean and unit variance per channel on that batch. Works on (B, C) and (B, C, H, W)."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.log_scale = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps
        self.register_buffer("initialized", torch.tensor(False))  # in the state dict: a loaded model keeps its init

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent initialisation: bias = -mean, log_scale = -log(std) per channel of x."""
        dims = [0, *range(2, x.dim())]  # every dimension but the channel one
        mean = x.mean(dim=dims)
        std = x.std(dim=dims, unbiased=False)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.initialized:
            self.initialize(x)
        y = (x + _per_channel(self.bias, x)) * _per_channel(self.log_scale.exp(), x)
        logdet = (_spatial(x) * self.log_scale.sum()).expand(x.shape[0])  # (B,)
        return y, logdet

    def inverse(self, y: Tensor) -> Tensor:
        return y * _per_channel((-self.log_scale).exp(), y) - _per_channel(self.bias, y)


class Invertible1x1Conv(nn.Module):
    """y = W x at every position (a 1x1 convolution; a linear map for vectors (B, C)), W initialised to a
    random rotation. lu=True: W = P L (U + diag(sign_s * exp(log_s))) with P fixed, so log |det W| = sum log_s;
    lu=False: a plain W and log |det W| from `torch.linalg.slogdet`. log-det of the layer = (H * W) log |det W|."""

    def __init__(self, num_channels: int, *, lu: bool = True):
        super().__init__()
        self.lu = lu
        q, _ = torch.linalg.qr(torch.randn(num_channels, num_channels))  # (C, C) orthogonal
        if lu:
            p, lower, upper = torch.linalg.lu(q)
            s = upper.diagonal()
            self.register_buffer("perm", p)
            self.register_buffer("sign_s", torch.sign(s))
            self.lower = nn.Parameter(torch.tril(lower, -1))
            self.upper = nn.Parameter(torch.triu(upper, 1))
            self.log_s = nn.Parameter(torch.log(s.abs()))
        else:
            self.weight_plain = nn.Parameter(q)

    def weight(self) -> Tensor:
        """The (C, C) matrix W."""
        if not self.lu:
            return self.weight_plain
        eye = torch.eye(self.log_s.shape[0], dtype=self.log_s.dtype, device=self.log_s.device)
        lower = torch.tril(self.lower, -1) + eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper

    def log_abs_det(self) -> Tensor:
        """log |det W| (a scalar)."""
        return self.log_s.sum() if self.lu else torch.linalg.slogdet(self.weight_plain)[1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = torch.einsum("ij,bj...->bi...", self.weight(), x)
        logdet = (_spatial(x) * self.log_abs_det()).expand(x.shape[0])  # (B,)
        return y, logdet

    def inverse(self, y: Tensor) -> Tensor:
        return torch.einsum("ij,bj...->bi...", torch.linalg.inv(self.weight()), y)


class Squeeze(nn.Module):
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 patch becomes 4 channels. A permutation, log-det 0."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, c, h, w = x.shape
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(b)

    def inverse(self, y: Tensor) -> Tensor:
        b, c4, h2, w2 = y.shape
        c = c4 // 4
        return y.view(b, c, 2, 2, h2, w2).permute(0, 1, 4, 2, 5, 3).reshape(b, c, 2 * h2, 2 * w2)


class LogitTransform(nn.Module):
    """w = logit(alpha + (1 - 2 alpha) y) for y in [0, 1]; log-det = sum_i log((1 - 2 alpha) / (s_i (1 - s_i)))
    with s = alpha + (1 - 2 alpha) y (step 4 of the module docstring). Inverse: y = (sigmoid(w) - alpha) / (1 - 2 alpha)."""

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
        self.alpha = float(alpha)

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        s = self.alpha + (1 - 2 * self.alpha) * y
        w = torch.log(s) - torch.log1p(-s)
        logdet = (math.log(1 - 2 * self.alpha) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(dim=1)
        return w, logdet

    def inverse(self, w: Tensor) -> Tensor:
        return (torch.sigmoid(w) - self.alpha) / (1 - 2 * self.alpha)


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class FlowConfig:
    kind: str = "2d"  # "2d": vectors (B, dim); "image": (B, C, H, W)
    dim: int = 2  # data dimension for kind "2d"
    image_shape: tuple[int, int, int] = (1, 8, 8)  # for kind "image"
    num_layers: int = 8  # couplings in all ("2d"), couplings per block ("image")
    num_blocks: int = 2  # "image": block 0 checkerboard couplings at full size, each later block squeeze + channel couplings
    hidden: int = 64  # width of the s and t networks (MLP units or conv channels)
    coupling_net: str = "conv"  # "image": "conv" (3x3 convolutions) or "mlp" (on the flattened image)
    share_st: bool = True  # one network with two output halves for s and t (`SharedST`); False: two networks
    use_actnorm: bool = True  # an ActNorm before every coupling
    use_1x1: bool = True  # an invertible 1x1 convolution before every coupling (where there is > 1 channel)
    scale_clamp: float | None = 3.0  # soft clamp on the coupling log-scales s (None: none)
    logit_alpha: float | None = 0.05  # "image": first layer w = logit(alpha + (1 - 2 alpha) y); None: no logit
    levels: int = 0  # "image": grey levels of the discrete data; > 0 makes loss() also log bits/dim
    dequantize: bool = False  # "image": loss() takes k / (levels - 1) and dequantizes it itself (fresh u each call)


def _small_init(layer: nn.Module) -> nn.Module:
    """Near-zero last layer, so a new coupling starts close to the identity (Glow's zero init, kept barely
    nonzero so gradients reach every parameter from the first step)."""
    with torch.no_grad():
        layer.weight.mul_(1e-3)
        layer.bias.zero_()
    return layer


def _mlp_net(dim: int, hidden: int, copies: int = 1) -> nn.Module:
    """(B, dim) -> (B, copies * dim)."""
    net = MLP(dim, (hidden, hidden), copies * dim)
    _small_init(net[-1])
    return net


class _FlatMLP(nn.Module):
    """An MLP on the flattened image, reshaped to image channels: (B, C, H, W) -> (B, copies * C, H, W)."""

    def __init__(self, shape: tuple[int, int, int], hidden: int, copies: int = 1):
        super().__init__()
        self.net = _mlp_net(math.prod(shape), hidden, copies)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        return self.net(x.flatten(1)).view(b, -1, h, w)


def _conv_net(channels: int, hidden: int, copies: int = 1) -> nn.Module:
    """(B, C, H, W) -> (B, copies * C, H, W)."""
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(hidden, hidden, 1),
        nn.SiLU(),
        _small_init(nn.Conv2d(hidden, copies * channels, 3, padding=1)),
    )


class RealNVP(nn.Module):
    """A stack of invertible layers on a standard normal base. `forward(x) -> (z, logdet)`, `inverse(z) -> x`,
    `log_prob(x) -> (B,)` (exact, nats), `sample(n)` by the inverse pass, `loss(batch)` = mean NLL.

    "2d": per layer [ActNorm] [1x1 (a C x C linear map)] AffineCoupling with alternating masks and MLP nets.
    "image": [LogitTransform], then block 0 at full size with checkerboard masks, each later block a Squeeze then
    channel masks; per layer [ActNorm] [Invertible1x1Conv if C > 1] AffineCoupling with small conv nets (or
    MLPs on the flattened image: coupling_net="mlp"). s and t are the two output halves of one network
    (`SharedST`, run once per coupling) unless share_st=False.
    coupling_forward_fn / coupling_inverse_fn / coupling_logdet_fn replace the reference pieces in every coupling;
    dequantize_fn(x, levels) -> y replaces `dequantize` in `loss` (used with config.dequantize=True).
    """

    def __init__(
        self,
        config: FlowConfig,
        *,
        coupling_forward_fn: Callable[..., tuple[Tensor, Tensor]] | None = None,
        coupling_inverse_fn: Callable[..., Tensor] | None = None,
        coupling_logdet_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        dequantize_fn: Callable[[Tensor, int], Tensor] | None = None,
    ):
        super().__init__()
        if config.kind not in ("2d", "image"):
            raise ValueError(f"kind must be '2d' or 'image', got {config.kind!r}")
        if config.coupling_net not in ("conv", "mlp"):
            raise ValueError(f"coupling_net must be 'conv' or 'mlp', got {config.coupling_net!r}")
        if config.dequantize and config.levels < 2:
            raise ValueError("dequantize=True needs levels >= 2 (the number of grey levels of the data)")
        self.config = config
        self.coupling_forward_fn = coupling_forward_fn
        self.coupling_inverse_fn = coupling_inverse_fn
        self.coupling_logdet_fn = coupling_logdet_fn
        self.dequantize_fn = dequantize_fn
        # a buffer that carries the device and dtype even for a flow without parameters
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        layers = self._build_2d() if config.kind == "2d" else self._build_image()
        self.layers = nn.ModuleList(layers)

    # -- construction
    def _coupling(self, mask: Tensor, make_net: Callable[[int], nn.Module]) -> AffineCoupling:
        """make_net(copies) builds a network with `copies` times the input's channels as output."""
        s_net, t_net = SharedST(make_net(2)).heads() if self.config.share_st else (make_net(1), make_net(1))
        return AffineCoupling(mask, s_net, t_net, scale_clamp=self.config.scale_clamp,
                              forward_fn=self.coupling_forward_fn, inverse_fn=self.coupling_inverse_fn,
                              logdet_fn=self.coupling_logdet_fn)

    def _build_2d(self) -> list[nn.Module]:
        cfg = self.config
        self.event_shape = (cfg.dim,)
        self.latent_shape = (cfg.dim,)
        layers: list[nn.Module] = []
        for mask in alternating_masks(cfg.dim, cfg.num_layers):
            if cfg.use_actnorm:
                layers.append(ActNorm(cfg.dim))
            if cfg.use_1x1:
                layers.append(Invertible1x1Conv(cfg.dim))
            layers.append(self._coupling(mask, lambda copies: _mlp_net(cfg.dim, cfg.hidden, copies)))
        return layers

    def _build_image(self) -> list[nn.Module]:
        cfg = self.config
        c, h, w = cfg.image_shape
        self.event_shape = (c, h, w)
        layers: list[nn.Module] = []
        if cfg.logit_alpha:
            layers.append(LogitTransform(cfg.logit_alpha))
        for block in range(cfg.num_blocks):
            if block > 0:
                if h % 2 or w % 2:
                    raise ValueError(f"cannot squeeze {h}x{w} (block {block}): use fewer num_blocks")
                layers.append(Squeeze())
                c, h, w = 4 * c, h // 2, w // 2
            for k in range(cfg.num_layers):
                if cfg.use_actnorm:
                    layers.append(ActNorm(c))
                if cfg.use_1x1 and c > 1:
                    layers.append(Invertible1x1Conv(c))
                mask = checkerboard_mask(h, w, invert=k % 2 == 1) if block == 0 else channel_mask(c, invert=k % 2 == 1)
                if cfg.coupling_net == "conv":
                    def make_net(copies: int, c: int = c) -> nn.Module:
                        return _conv_net(c, cfg.hidden, copies)
                else:
                    def make_net(copies: int, shape: tuple[int, int, int] = (c, h, w)) -> nn.Module:
                        return _FlatMLP(shape, cfg.hidden, copies)
                layers.append(self._coupling(mask, make_net))
        self.latent_shape = (c, h, w)
        return layers

    def cache_key(self) -> dict:
        """What besides the config determines the trained weights: the injected functions' code."""
        key = {name: function_key(getattr(self, name))
               for name in ("coupling_forward_fn", "coupling_inverse_fn", "coupling_logdet_fn")}
        if self.dequantize_fn is not None:  # only when given, so the keys of earlier checkpoints stay valid
            key["dequantize_fn"] = function_key(self.dequantize_fn)
        return key

    @property
    def num_dims(self) -> int:
        """D, the number of scalars in one data point."""
        return math.prod(self.event_shape)

    # -- the flow
    def _check(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != tuple(self.event_shape):
            raise ValueError(f"expected data of shape (B, {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, *event_shape) -> z (B, *latent_shape) and sum_k log |det J_k| (B,)."""
        self._check(x)
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor) -> Tensor:
        """z (B, *latent_shape) -> x (B, *event_shape)."""
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def to_data_layout(self, h: Tensor, num_applied: int) -> Tensor:
        """The state after the first `num_applied` layers, with their squeezes undone: (B, *event_shape)."""
        for layer in reversed(self.layers[:num_applied]):
            if isinstance(layer, Squeeze):
                h = layer.inverse(h)
        return h

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density log p(x) in nats: (B, *event_shape) -> (B,)."""
        z, logdet = self(x)
        return standard_normal_log_prob(z) + logdet

    @staticmethod
    def _first(batch) -> Tensor:
        return batch[0] if isinstance(batch, (list, tuple)) else batch

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        """Mean negative log-likelihood in nats; batch = x or (x, ...). Logs "nll" and, with levels > 0, "bpd"."""
        x = self._first(batch)
        if self.config.dequantize:
            x = (self.dequantize_fn or dequantize)(x, self.config.levels)
        log_p = self.log_prob(x)  # (B,)
        nll = -log_p.mean()
        logs = {"nll": nll.item()}
        if self.config.levels:
            logs["bpd"] = float(bits_per_dim(-nll.item(), self.num_dims, self.config.levels))
        return nll, logs

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
        temperature: float = 1.0,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """n samples (n, *event_shape) by the inverse pass from z ~ N(0, temperature^2 I) (1: the model itself;
        Glow's "reduced temperature" < 1 trades diversity for cleaner samples).

        return_trajectory=True also returns (K + 1, n, *event_shape): entry 0 is z, entry j the state after
        inverting the top j layers (squeezes undone so every entry has the data's shape), entry K the samples.
        Image samples come back in the data range only up to the logit's margin: clamp to [0, 1] to display.
        """
        z = temperature * randn_like_with(self._anchor.new_empty(n, *self.latent_shape), generator)
        states = [self.to_data_layout(z, len(self.layers))] if return_trajectory else []
        for j, layer in enumerate(reversed(self.layers)):
            z = layer.inverse(z)
            if return_trajectory:
                states.append(self.to_data_layout(z, len(self.layers) - 1 - j))
        if return_trajectory:
            return z, torch.stack(states)
        return z


# ---------------------------------------------------------------------------------------------- for plots
@torch.no_grad()
def density_grid(
    flow: RealNVP,
    xlim: Sequence[float] = (-4.0, 4.0),
    ylim: Sequence[float] = (-4.0, 4.0),
    resolution: int = 200,
    *,
    batch_size: int = 16384,
    num_inverted: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """A 2D flow's density on a grid of cell centres: xs (R,), ys (R,), density (R, R) with density[i, j] =
    p(xs[j], ys[i]) (rows follow y, as imshow(origin="lower") and contour expect). CPU tensors.

    num_inverted=j draws instead the density of the state after inverting the top j layers (`stage_log_prob`)."""
    if tuple(flow.event_shape) != (2,):
        raise ValueError(f"density_grid needs a flow on 2D points, this one models {tuple(flow.event_shape)}")
    device = device_of(flow)
    dtype = flow._anchor.dtype
    dx = (xlim[1] - xlim[0]) / resolution
    dy = (ylim[1] - ylim[0]) / resolution
    xs = torch.linspace(xlim[0] + dx / 2, xlim[1] - dx / 2, resolution, dtype=dtype)
    ys = torch.linspace(ylim[0] + dy / 2, ylim[1] - dy / 2, resolution, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (R*R, 2)
    def log_density(chunk: Tensor) -> Tensor:
        return flow.log_prob(chunk) if num_inverted is None else stage_log_prob(flow, chunk, num_inverted)

    log_p = torch.cat([log_density(chunk.to(device)).cpu() for chunk in points.split(batch_size)])
    return xs, ys, log_p.exp().view(resolution, resolution)


@torch.no_grad()
def layer_outputs(flow: RealNVP, x: Tensor) -> Tensor:
    """The forward pass layer by layer: (K + 1, B, *event_shape), entry 0 = x, entry k = the output of layer k
    (squeezes undone so every entry has the data's shape); the last entry is z = f(x) in the data's layout."""
    flow._check(x)
    states = [x]
    h = x
    for k, layer in enumerate(flow.layers):
        h, _ = layer(h)
        states.append(flow.to_data_layout(h, k + 1))
    return torch.stack(states)



def stage_log_prob(flow: RealNVP, h: Tensor, num_inverted: int) -> Tensor:
    """Exact log-density (nats) of the state after inverting the top `num_inverted` = j layers of z ~ N(0, I):
    (B, *event_shape) -> (B,), h in the data's layout (as `sample(..., return_trajectory=True)` returns it).

    That state is h = f_{K-j+1}^{-1}( ... f_K^{-1}(z)), so by the change of variables through the j layers
        log p_j(h) = log N(f_K( ... f_{K-j+1}(h)); 0, I) + sum_{k > K-j} log |det J_k|.
    j = 0 is the base density, j = K the model's `log_prob`.
    """
    num_layers = len(flow.layers)
    if not 0 <= num_inverted <= num_layers:
        raise ValueError(f"num_inverted must lie in 0..{num_layers} (the flow has {num_layers} layers), got {num_inverted}")
    flow._check(h)
    start = num_layers - num_inverted
    for layer in flow.layers[:start]:  # bring h into the layout the remaining layers expect
        if isinstance(layer, Squeeze):
            h, _ = layer(h)
    logdet = h.new_zeros(h.shape[0])
    for layer in flow.layers[start:]:
        h, ld = layer(h)
        logdet = logdet + ld
    return standard_normal_log_prob(h) + logdet
