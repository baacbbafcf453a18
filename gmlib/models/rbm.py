"""Bernoulli-Bernoulli restricted Boltzmann machine (Smolensky, 1986), trained by contrastive divergence
(Hinton, 2002) or persistent contrastive divergence (Tieleman, 2008).

Notation as in course lesson 06:
    v (B, D) visible units in {0, 1}, h (B, H) hidden units in {0, 1}
    W (D, H) weights, b (D,) visible biases, c (H,) hidden biases
    E(v, h) = -b.v - c.h - v W h                        energy of a joint configuration
    p(v, h) = exp(-E(v, h)) / Z,   Z = sum_{v, h} exp(-E(v, h))
    p(h_j = 1 | v) = sigmoid(c_j + (v W)_j)              the hidden units are independent given v
    p(v_i = 1 | h) = sigmoid(b_i + (W h)_i)              and the visible units given h
    F(v) = -log sum_h exp(-E(v, h)) = -b.v - sum_j softplus(c_j + (v W)_j)      free energy, p(v) = exp(-F(v)) / Z

Learning: grad_theta [-log p(v)] = grad_theta F(v) - E_{v' ~ p}[grad_theta F(v')]. CD-k estimates the second
term with a k-step block-Gibbs chain started at the data; PCD keeps `num_chains` persistent chains across
updates instead. The surrogate loss mean F(v_data) - mean F(v_model), with v_model held fixed, has exactly
this gradient, so autograd and any optimiser do the rest (`cd_k_loss`: the chain, then the surrogate).

Exact quantities (tiny models only): summing out the larger layer analytically,
    log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)] = logsumexp_v [-F(v)]
enumerates 2^min(D, H) configurations (refused beyond 2^20). The pseudo-log-likelihood
    PLL(v) = sum_i log p(v_i | v_{-i}),   p(v_i | v_{-i}) = sigmoid(F(v with v_i flipped) - F(v))
needs no Z: exact (D flips) or the stochastic one-flip estimate D * log p(v_i | v_{-i}) with i random.

Images: digits (B, 1, 8, 8) are flattened to (B, 64); binarize them (`load_digits(variant="binarized")`).
The lesson's pieces are pure functions (`p_h_given_v`, `p_v_given_h`, `free_energy`, `gibbs_step`, `cd_k_loss`,
`log_partition`); the model takes replacements: `RBM(config, free_energy_fn=mine, gibbs_step_fn=mine,
cd_loss_fn=mine)`, and
`log_prob_exact(x, log_z=mine(W, b, c))` scores data with a log Z computed elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import function_key

__all__ = [
    "RBMConfig",
    "RBM",
    "p_h_given_v",
    "p_v_given_h",
    "free_energy",
    "gibbs_step",
    "cd_k_loss",
    "bernoulli_sample",
    "log_partition",
    "MAX_ENUMERATION_BITS",
]

MAX_ENUMERATION_BITS = 20  # exact log Z enumerates at most 2^20 configurations of the smaller layer


# ---------------------------------------------------------------------------------------------- the pieces
def bernoulli_sample(p: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Independent Bernoulli(p) draws in {0., 1.} shaped like p; the uniforms come from `generator` (on its
    own device, then moved), so a CPU generator gives the same draws on every device."""
    if generator is None:
        u = torch.rand_like(p)
    else:
        u = torch.rand(p.shape, generator=generator, device=generator.device, dtype=p.dtype).to(p.device)
    return (u < p).to(p.dtype)


def p_h_given_v(v: Tensor, W: Tensor, c: Tensor) -> Tensor:
    """p(h_j = 1 | v) = sigmoid(c_j + (v W)_j): (B, D), (D, H), (H,) -> (B, H)."""
    return torch.sigmoid(c + v @ W)


def p_v_given_h(h: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """p(v_i = 1 | h) = sigmoid(b_i + (W h)_i): (B, H), (D, H), (D,) -> (B, D)."""
    return torch.sigmoid(b + h @ W.T)


def free_energy(v: Tensor, W: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """F(v) = -b.v - sum_j softplus(c_j + (v W)_j): (B, D) -> (B,), in nats."""
    return -(v @ b) - F.softplus(c + v @ W).sum(dim=1)


def gibbs_step(v: Tensor, W: Tensor, b: Tensor, c: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """One block-Gibbs sweep v -> h ~ p(h | v) -> v' ~ p(v | h): (B, D) -> (B, D) in {0, 1}."""
    h = bernoulli_sample(p_h_given_v(v, W, c), generator=generator)  # (B, H)
    return bernoulli_sample(p_v_given_h(h, W, b), generator=generator)  # (B, D)


def cd_k_loss(v_data: Tensor, v_start: Tensor, k: int, free_energy_fn: Callable[[Tensor], Tensor],
              gibbs_fn: Callable[..., Tensor], *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The CD-k surrogate and its negative samples: (loss (scalar), v_neg (B', D)).

    v_neg: k block-Gibbs sweeps `gibbs_fn(v, generator=generator)` from v_start (B', D) (the data batch for
    CD-k, the persistent chains for PCD-k), run without gradient. loss = mean F(v_data) - mean F(v_neg) with
    F = `free_energy_fn` (B, D) -> (B,); its gradient in the parameters is the CD-k estimate of the gradient
    of the mean negative log-likelihood.
    """
    if k < 1:
        raise ValueError(f"k (Gibbs sweeps) must be >= 1, got {k}")
    with torch.no_grad():
        v_neg = v_start
        for _ in range(k):
            v_neg = gibbs_fn(v_neg, generator=generator)  # (B', D)
    return free_energy_fn(v_data).mean() - free_energy_fn(v_neg).mean(), v_neg


def _all_binary(n: int, start: int, stop: int, device, dtype) -> Tensor:
    """Rows start..stop-1 of the 2^n binary configurations (most significant bit first): (stop - start, n)."""
    idx = torch.arange(start, stop, device=device)
    bits = torch.arange(n - 1, -1, -1, device=device)
    return ((idx[:, None] >> bits) & 1).to(dtype)


def log_partition(W: Tensor, b: Tensor, c: Tensor, *, over: str | None = None, chunk: int = 1 << 14) -> Tensor:
    """log Z (a 0-dim tensor in W's dtype) by enumerating one layer and summing the other out analytically.

    W (D, H), b (D,), c (H,). over: "hidden" (2^H terms c.h + sum_i softplus(b_i + (W h)_i)), "visible"
    (2^D terms -F(v)), or None for the smaller layer; configurations go `chunk` at a time, so memory stays
    small. Raises ValueError when that layer has more than MAX_ENUMERATION_BITS (20) units.
    """
    d, h = W.shape
    if over is None:
        over = "hidden" if h <= d else "visible"
    if over not in ("hidden", "visible"):
        raise ValueError(f"over must be 'hidden', 'visible' or None, got {over!r}")
    n = h if over == "hidden" else d
    if n > MAX_ENUMERATION_BITS:
        raise ValueError(f"exact log Z over the {over} layer enumerates 2^{n} configurations; only "
                         f"<= 2^{MAX_ENUMERATION_BITS} is tractable (D = {d}, H = {h}): use a smaller model, "
                         "or pseudo_log_likelihood to score this one")
    parts = []
    for start in range(0, 1 << n, chunk):
        s = _all_binary(n, start, min(start + chunk, 1 << n), W.device, W.dtype)  # (chunk, n)
        if over == "hidden":  # s = hidden configurations: sum out the visibles
            parts.append(s @ c + F.softplus(b + s @ W.T).sum(dim=1))
        else:  # s = visible configurations: -F(v)
            parts.append(-free_energy(s, W, b, c))
    return torch.logsumexp(torch.cat(parts), dim=0)


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class RBMConfig:
    num_visible: int = 64
    num_hidden: int = 64
    k: int = 1  # Gibbs sweeps per update (CD-k / PCD-k)
    persistent: bool = False  # PCD: chains carry over between updates
    num_chains: int = 128  # PCD: number of persistent chains
    lr: float = 0.05  # learning rate of `optimizers()` (SGD with momentum)
    momentum: float = 0.5
    l2: float = 1e-4  # weight decay on W: the loss adds l2 / 2 * |W|^2
    image_shape: tuple[int, ...] | None = (1, 8, 8)  # shape of a sample (prod = num_visible), None: (n, D)


class RBM(nn.Module):
    """W, b, c as parameters; `loss(batch)` is the CD-k (or PCD-k) surrogate; batch = v or (v, y), any shape
    (B, ...) with prod(...) = num_visible and values in [0, 1] (labels ignored).

    Injected pieces (None: gmlib's): free_energy_fn(v, W, b, c) like `free_energy`, gibbs_step_fn(v, W, b, c, *,
    generator) like `gibbs_step`, and cd_loss_fn(v_data, v_start, k, free_energy_fn, gibbs_fn, *, generator)
    -> (loss, v_neg) like `cd_k_loss` (it receives this model's free energy and Gibbs sweep as (v) -> ...).
    """

    def __init__(
        self,
        config: RBMConfig,
        *,
        free_energy_fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor] | None = None,
        gibbs_step_fn: Callable[..., Tensor] | None = None,
        cd_loss_fn: Callable[..., tuple[Tensor, Tensor]] | None = None,
    ):
        super().__init__()
        d, h = config.num_visible, config.num_hidden
        if config.image_shape is not None and math.prod(config.image_shape) != d:
            raise ValueError(f"image_shape {config.image_shape} does not hold num_visible = {d} units")
        if config.k < 1:
            raise ValueError(f"k (Gibbs sweeps per update) must be >= 1, got {config.k}")
        self.config = config
        self.free_energy_fn = free_energy_fn
        self.gibbs_step_fn = gibbs_step_fn
        self.cd_loss_fn = cd_loss_fn
        self.W = nn.Parameter(0.01 * torch.randn(d, h))
        self.b = nn.Parameter(torch.zeros(d))
        self.c = nn.Parameter(torch.zeros(h))
        if config.persistent:
            self.register_buffer("chains", torch.bernoulli(torch.full((config.num_chains, d), 0.5)))

    def cache_key(self) -> dict:
        """What besides the config determines the trained weights: the injected functions' code (cd_loss_fn's
        key appears only when one is injected, so older cache keys stay valid)."""
        key = {name: function_key(getattr(self, name)) for name in ("free_energy_fn", "gibbs_step_fn")}
        if self.cd_loss_fn is not None:
            key["cd_loss_fn"] = function_key(self.cd_loss_fn)
        return key

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """The usual RBM optimiser: SGD with the config's learning rate and momentum (pass to `fit`)."""
        return [torch.optim.SGD(self.parameters(), lr=self.config.lr, momentum=self.config.momentum)]

    @torch.no_grad()
    def init_visible_bias(self, x: Tensor, eps: float = 1e-3) -> RBM:
        """Set b_i = log(p_i / (1 - p_i)) from the data's pixel means p_i, clipped to [eps, 1 - eps] (Hinton's
        "practical guide", 2010): units that are always off in the data start off, so chains do not light up
        pixels the data never uses. x (N, ...) in [0, 1]; returns the model."""
        p = self.flatten(x.to(self.b.device)).mean(dim=0).clamp(eps, 1 - eps)  # (D,)
        self.b.copy_(torch.log(p) - torch.log1p(-p))
        return self

    # -- the pieces with this model's parameters
    def flatten(self, x: Tensor) -> Tensor:
        """(B, ...) -> (B, D)."""
        v = x.reshape(x.shape[0], -1)
        if v.shape[1] != self.config.num_visible:
            raise ValueError(f"expected {self.config.num_visible} visible units per example, got {v.shape[1]}")
        return v.to(self.W.dtype)

    def unflatten(self, v: Tensor) -> Tensor:
        """(B, D) -> (B, *image_shape) (unchanged when image_shape is None)."""
        shape = self.config.image_shape
        return v if shape is None else v.reshape(v.shape[0], *shape)

    def free_energy(self, x: Tensor) -> Tensor:
        """F(v) (B,) for x (B, ...)."""
        return (self.free_energy_fn or free_energy)(self.flatten(x), self.W, self.b, self.c)

    def gibbs(self, v: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """One block-Gibbs sweep (B, D) -> (B, D) with this model's parameters (or the injected step)."""
        if self.gibbs_step_fn is None:
            return gibbs_step(v, self.W, self.b, self.c, generator=generator)
        kwargs = {} if generator is None else {"generator": generator}
        return self.gibbs_step_fn(v, self.W, self.b, self.c, **kwargs)

    def reconstruct(self, x: Tensor) -> Tensor:
        """Mean-field reconstruction p(v | h = p(h | v)): (B, ...) -> (B, D) in [0, 1]."""
        v = self.flatten(x)
        return p_v_given_h(p_h_given_v(v, self.W, self.c), self.W, self.b)

    # -- training
    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        v_data = self.flatten(x)  # (B, D)
        v_start = self.chains if self.config.persistent else v_data  # (num_chains or B, D)
        cd, v_model = (self.cd_loss_fn or cd_k_loss)(v_data, v_start, self.config.k, self.free_energy, self.gibbs)
        with torch.no_grad():
            if self.config.persistent:
                self.chains.copy_(v_model)
            recon = (v_data - self.reconstruct(v_data)).pow(2).sum(dim=1).mean()
            f_data = self.free_energy(v_data).mean()
        loss = cd + 0.5 * self.config.l2 * self.W.pow(2).sum()
        return loss, {"cd": cd.item(), "recon": recon.item(), "free_energy": f_data.item()}

    # -- sampling
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, num_steps: int = 1000,
               return_trajectory: bool = False, probabilities: bool = False,
               v0: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """n samples (n, *image_shape) (or (n, D)) after `num_steps` block-Gibbs sweeps from uniform random
        binary visibles (or from v0).

        probabilities=True returns p(v | h) with h ~ p(h | v_T) in [0, 1] (a smoother picture of the same
        state) instead of the binary v_T. With return_trajectory=True returns (samples, trajectory),
        trajectory (num_steps + 1, n, ...) the binary states from v_0 on.
        """
        d = self.config.num_visible
        if v0 is None:
            v = bernoulli_sample(torch.full((n, d), 0.5, device=self.W.device, dtype=self.W.dtype),
                                 generator=generator)  # (n, D)
        else:
            v = self.flatten(v0.to(self.W.device))
        states = [v] if return_trajectory else None
        for _ in range(num_steps):
            v = self.gibbs(v, generator=generator)
            if states is not None:
                states.append(v)
        out = v
        if probabilities:
            h = bernoulli_sample(p_h_given_v(v, self.W, self.c), generator=generator)
            out = p_v_given_h(h, self.W, self.b)
        out = self.unflatten(out)
        if states is not None:
            traj = torch.stack(states)  # (T + 1, n, D)
            return out, traj.reshape(traj.shape[0], *out.shape)
        return out

    # -- likelihoods
    @torch.no_grad()
    def log_partition_exact(self, *, over: str | None = None, chunk: int = 1 << 14) -> Tensor:
        """log Z (a 0-dim float64 tensor) by enumerating one layer and summing the other out analytically.

        over: "hidden" (2^H terms c.h + sum_i softplus(b_i + (W h)_i)), "visible" (2^D terms -F(v)), or None
        for the smaller layer. Raises ValueError when that layer has more than MAX_ENUMERATION_BITS (20) units.
        """
        return log_partition(self.W.double(), self.b.double(), self.c.double(), over=over, chunk=chunk)

    @torch.no_grad()
    def log_prob_exact(self, x: Tensor, log_z: Tensor | None = None) -> Tensor:
        """log p(v) = -F(v) - log Z in nats: (B, ...) -> (B,) (float32; tiny models, see log_partition_exact)."""
        log_z = self.log_partition_exact() if log_z is None else log_z
        v = self.flatten(x).double()
        return (-free_energy(v, self.W.double(), self.b.double(), self.c.double()) - log_z).to(self.W.dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        """The exact log-likelihood (B,) in nats where log Z is tractable (min(D, H) <= 20); else ValueError."""
        return self.log_prob_exact(x)

    @torch.no_grad()
    def pseudo_log_likelihood(self, x: Tensor, *, generator: torch.Generator | None = None,
                              exact: bool | None = None) -> Tensor:
        """PLL(v) = sum_i log p(v_i | v_{-i}) in nats: (B, ...) -> (B,); binary v.

        exact=True sums all D conditionals (D free-energy evaluations per example); exact=False is the
        stochastic estimate D * log p(v_i | v_{-i}) with one random i per example (unbiased for PLL, drawn
        from `generator`); None picks exact when D <= 256.
        """
        v = self.flatten(x)  # (B, D)
        bsz, d = v.shape
        if exact is None:
            exact = d <= 256
        f = self.free_energy(v)  # (B,)
        if exact:
            eye = torch.eye(d, device=v.device, dtype=v.dtype)  # (D, D)
            flipped = (v[:, None, :] + eye - 2 * v[:, None, :] * eye).reshape(bsz * d, d)  # (B*D, D)
            f_flip = self.free_energy(flipped).reshape(bsz, d)  # (B, D)
            return F.logsigmoid(f_flip - f[:, None]).sum(dim=1)
        gen_dev = generator.device if generator is not None else v.device
        i = torch.randint(0, d, (bsz,), generator=generator, device=gen_dev).to(v.device)  # (B,)
        flipped = v.clone()
        rows = torch.arange(bsz, device=v.device)
        flipped[rows, i] = 1 - flipped[rows, i]
        return d * F.logsigmoid(self.free_energy(flipped) - f)
