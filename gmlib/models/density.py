"""Classical density estimators: a histogram, a Gaussian kernel density estimate (Rosenblatt, 1956; Parzen,
1962) and a Gaussian mixture fitted by expectation-maximisation (Dempster, Laird and Rubin, 1977).

Notation as in course lesson 00:
    x (N, D) data points, one per row; K mixture components; y (N,) class labels in {0, ..., C-1}
    histogram   p(x) = (count(bin of x) + alpha) / ((N + alpha * num_bins) * bin volume),  0 outside the box
    KDE         p(x) = 1/N sum_n N(x; x_n, h^2 I),  h the bandwidth
    GMM         p(x) = sum_k pi_k N(x; mu_k, Sigma_k),  weights pi (K,), means mu (K, D), covariances Sigma (K, D, D)
    E step      r_nk = pi_k N(x_n; mu_k, Sigma_k) / p(x_n)       responsibilities r (N, K), each row sums to 1
    M step      N_k = sum_n r_nk,  pi_k = N_k / N,  mu_k = sum_n r_nk x_n / N_k,
                Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k + reg_covar * I
    Bayes' rule p(y|x) = p(x|y) p(y) / sum_c p(x|c) p(c)          (a generative classifier: `class_posterior`)

Every log-density is in nats. Everything that sums probabilities does so in log space (logsumexp), so points far
from every component or kernel get a large negative log-density instead of log(0) = -inf.

The pieces a lesson teaches are small pure functions (`class_posterior`, `kde_log_prob`, `e_step`, `m_step`);
the models take replacements for them: `KernelDensity(h, kde_fn=mine)`,
`GaussianMixture(config, e_step_fn=mine, m_step_fn=mine)`. The mixture is an `nn.Module` whose parameters are
float64 buffers, so `load_or_train` can cache a fitted mixture like any other model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..checkpoints import function_key
from ..config import FAST_MAX_STEPS, fast_mode
from ..train import History

__all__ = [
    "gaussian_log_prob",
    "class_posterior",
    "kde_log_prob",
    "e_step",
    "m_step",
    "HistogramDensity",
    "KernelDensity",
    "GaussianMixtureConfig",
    "GaussianMixture",
]


# ---------------------------------------------------------------------------------------------- the pieces
def gaussian_log_prob(x: Tensor, means: Tensor, covariances: Tensor) -> Tensor:
    """log N(x_n; mu_k, Sigma_k) for every point and every Gaussian: (N, D), (K, D), (K, D, D) -> (N, K).

    Computed through the Cholesky factor Sigma = L L^T: log N = -(|L^-1 (x - mu)|^2 + D log 2 pi) / 2 - sum log diag L.
    """
    k, d = means.shape
    chol = torch.linalg.cholesky(covariances)  # (K, D, D)
    eye = torch.eye(d, dtype=covariances.dtype, device=covariances.device).expand(k, d, d)
    chol_inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # (K, D, D): L^-1
    white = (x[None] - means[:, None]) @ chol_inv.transpose(1, 2)  # (K, N, D): L^-1 (x_n - mu_k)
    maha = white.pow(2).sum(dim=2).T  # (N, K) squared Mahalanobis distances
    half_logdet = torch.diagonal(chol, dim1=1, dim2=2).log().sum(dim=1)  # (K,)
    return -0.5 * (maha + d * math.log(2 * math.pi)) - half_logdet[None]


def class_posterior(log_px_given_y: Tensor, log_prior: Tensor) -> Tensor:
    """Bayes' rule: p(y = c | x_n) from log p(x_n | y = c) (N, C) and log p(y = c) (C,) -> (N, C), rows sum to 1."""
    return torch.softmax(log_px_given_y + log_prior[None], dim=1)


def kde_log_prob(x: Tensor, data: Tensor, bandwidth: float) -> Tensor:
    """log p(x_m) of the Gaussian KDE p(x) = 1/N sum_n N(x; data_n, h^2 I): (M, D), (N, D), h > 0 -> (M,)."""
    n, d = data.shape
    sq = torch.cdist(x, data).pow(2)  # (M, N) squared distances
    log_norm = 0.5 * d * math.log(2 * math.pi * bandwidth**2)
    return torch.logsumexp(-sq / (2 * bandwidth**2), dim=1) - math.log(n) - log_norm


def e_step(x: Tensor, weights: Tensor, means: Tensor, covariances: Tensor) -> tuple[Tensor, Tensor]:
    """Responsibilities r_nk = p(k | x_n) and log p(x_n) of a Gaussian mixture.

    x (N, D), weights (K,), means (K, D), covariances (K, D, D) -> r (N, K) with rows summing to 1, log_px (N,).
    """
    log_joint = weights.log()[None] + gaussian_log_prob(x, means, covariances)  # (N, K): log pi_k N(x_n; ...)
    log_px = torch.logsumexp(log_joint, dim=1)  # (N,)
    return (log_joint - log_px[:, None]).exp(), log_px


def m_step(x: Tensor, resp: Tensor, reg_covar: float = 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """Maximum-likelihood weights, means and covariances given the responsibilities.

    x (N, D), resp (N, K) -> weights (K,), means (K, D), covariances (K, D, D) (+ reg_covar on the diagonal).
    A component with no responsibility at all gets N_k = 10 * machine epsilon (as scikit-learn does), not 0/0.
    """
    n, d = x.shape
    nk = resp.sum(dim=0) + 10 * torch.finfo(resp.dtype).eps  # (K,)
    means = resp.T @ x / nk[:, None]  # (K, D)
    diff = x[None] - means[:, None]  # (K, N, D)
    covariances = (resp.T[:, :, None] * diff).transpose(1, 2) @ diff / nk[:, None, None]  # (K, D, D)
    covariances = covariances + reg_covar * torch.eye(d, dtype=x.dtype, device=x.device)
    return nk / n, means, covariances


def _generator_device(generator: torch.Generator | None, fallback: torch.device) -> torch.device:
    return generator.device if generator is not None else fallback


# ---------------------------------------------------------------------------------------------- histogram
class HistogramDensity:
    """A histogram on the box [low, high]^D with `bins` equal bins per axis: `HistogramDensity(20).fit(x)`.

    alpha: pseudo-count added to every bin (0: a bin without training points has density 0, so a test point
    there has log-density -inf). Points outside the box always have density 0.
    """

    def __init__(self, bins: int = 20, low: float | Sequence[float] = -4.0, high: float | Sequence[float] = 4.0,
                 alpha: float = 0.0):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.bins, self.alpha = int(bins), float(alpha)
        self.low, self.high = low, high
        self.counts: Tensor | None = None  # (bins,) * D

    def _box(self, d: int, like: Tensor) -> tuple[Tensor, Tensor]:
        low = torch.as_tensor(self.low, dtype=like.dtype, device=like.device).expand(d)
        high = torch.as_tensor(self.high, dtype=like.dtype, device=like.device).expand(d)
        if not (high > low).all():
            raise ValueError("high must exceed low on every axis")
        return low, high

    def _cells(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Flat bin index (N,) of each point and whether it lies inside the box (N,)."""
        low, high = self._box(x.shape[1], x)
        pos = (x - low) / (high - low) * self.bins  # (N, D) in [0, bins) inside the box
        inside = ((x >= low) & (x <= high)).all(dim=1)
        idx = pos.floor().long().clamp(0, self.bins - 1)  # the upper edge belongs to the last bin
        flat = torch.zeros(len(x), dtype=torch.long, device=x.device)
        for j in range(x.shape[1]):
            flat = flat * self.bins + idx[:, j]
        return flat, inside

    def fit(self, x: Tensor) -> HistogramDensity:
        """Count the points of x (N, D) per bin (points outside the box are dropped); returns self."""
        self.dim, self.num_points = x.shape[1], len(x)
        flat, inside = self._cells(x)
        counts = torch.bincount(flat[inside], minlength=self.bins**self.dim)
        self.counts = counts.to(x.dtype).reshape((self.bins,) * self.dim)
        self._dtype = x.dtype
        return self

    @property
    def bin_volume(self) -> float:
        low, high = self._box(self.dim, self.counts)
        return float(((high - low) / self.bins).prod())

    def bin_probs(self) -> Tensor:
        """Probability of each bin, flattened: (bins**D,), sums to 1 (when any point or pseudo-count exists)."""
        if self.counts is None:
            raise RuntimeError("call fit(x) first")
        c = self.counts.flatten() + self.alpha
        return c / c.sum()

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) in nats: (N, D) -> (N,); -inf in empty bins (alpha = 0) and outside the box."""
        probs = self.bin_probs().to(x.device, x.dtype)
        flat, inside = self._cells(x)
        log_p = probs.log()[flat] - math.log(self.bin_volume)
        return torch.where(inside, log_p, torch.full_like(log_p, -math.inf))

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n points (n, D): a bin drawn by its probability, then a uniform point inside it."""
        probs = self.bin_probs()
        dev = _generator_device(generator, probs.device)
        flat = torch.multinomial(probs.to(dev, torch.float64), n, replacement=True, generator=generator)  # (n,)
        u = torch.rand(n, self.dim, generator=generator, device=dev, dtype=self._dtype)  # (n, D)
        idx = torch.stack([(flat // self.bins ** (self.dim - 1 - j)) % self.bins for j in range(self.dim)], dim=1)
        low, high = self._box(self.dim, u)
        return (low + (idx + u) * (high - low) / self.bins).to(probs.device)


# ---------------------------------------------------------------------------------------------- kernel density
class KernelDensity:
    """Gaussian kernel density estimate with bandwidth h: `KernelDensity(0.3).fit(x)`.

    kde_fn: a replacement for `kde_log_prob(x, data, bandwidth)` (a student's version).
    """

    def __init__(self, bandwidth: float = 0.3, *, kde_fn: Callable[[Tensor, Tensor, float], Tensor] | None = None,
                 chunk_size: int = 4096):
        if not bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
        self.bandwidth, self.kde_fn, self.chunk_size = float(bandwidth), kde_fn, chunk_size
        self.data: Tensor | None = None

    def fit(self, x: Tensor) -> KernelDensity:
        """Keep the training points x (N, D) (a KDE has no other parameters); returns self."""
        self.data = x.detach().clone()
        return self

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) in nats: (M, D) -> (M,), evaluated in chunks of queries to bound memory."""
        if self.data is None:
            raise RuntimeError("call fit(x) first")
        fn = self.kde_fn or kde_log_prob
        data = self.data.to(x.device, x.dtype)
        return torch.cat([fn(part, data, self.bandwidth) for part in x.split(self.chunk_size)])

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n points (n, D): a training point drawn uniformly, plus N(0, h^2 I) noise."""
        if self.data is None:
            raise RuntimeError("call fit(x) first")
        dev = _generator_device(generator, self.data.device)
        pick = torch.randint(0, len(self.data), (n,), generator=generator, device=dev).to(self.data.device)
        noise = torch.randn(n, self.data.shape[1], generator=generator, device=dev, dtype=self.data.dtype)
        return self.data[pick] + self.bandwidth * noise.to(self.data.device)


# ---------------------------------------------------------------------------------------------- Gaussian mixture
@dataclass
class GaussianMixtureConfig:
    num_components: int = 8  # K
    dim: int = 2  # D
    reg_covar: float = 1e-6  # added to every covariance's diagonal in the M step (keeps it invertible)
    max_iter: int = 200  # EM iterations at most
    tol: float = 1e-6  # stop when the mean log-likelihood per point improves by less than this (nats)


EStep = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
MStep = Callable[..., tuple[Tensor, Tensor, Tensor]]


class GaussianMixture(nn.Module):
    """A mixture of K full-covariance Gaussians, fitted by EM: `gmm.fit_em(x, generator=g)`.

    Buffers (float64): weights (K,), means (K, D), covariances (K, D, D). Initialisation (`initialize`): means
    by k-means++ seeding (Arthur and Vassilvitskii, 2007), every covariance the data's covariance, equal weights.
    e_step_fn, m_step_fn: replacements for `e_step` and `m_step` (a student's versions).
    """

    def __init__(self, config: GaussianMixtureConfig, *, e_step_fn: EStep | None = None, m_step_fn: MStep | None = None):
        super().__init__()
        k, d = config.num_components, config.dim
        if k < 1 or d < 1:
            raise ValueError(f"num_components and dim must be >= 1, got {k} and {d}")
        self.config = config
        self.e_step_fn, self.m_step_fn = e_step_fn, m_step_fn
        self.register_buffer("weights", torch.full((k,), 1.0 / k, dtype=torch.float64))
        self.register_buffer("means", torch.zeros(k, d, dtype=torch.float64))
        self.register_buffer("covariances", torch.eye(d, dtype=torch.float64).repeat(k, 1, 1))

    def cache_key(self) -> dict:
        """What besides the config determines the fitted parameters: the injected functions' code."""
        return {name: function_key(getattr(self, name)) for name in ("e_step_fn", "m_step_fn")}

    def num_parameters(self) -> int:
        """Free parameters: K - 1 weights, K D means, K D (D + 1) / 2 covariance entries."""
        k, d = self.config.num_components, self.config.dim
        return (k - 1) + k * d + k * d * (d + 1) // 2

    def _as64(self, x: Tensor) -> Tensor:
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.config.dim:
            raise ValueError(f"expected points with {self.config.dim} dimensions, got {x.shape[1]}")
        return x.to(self.means.device, torch.float64)

    @torch.no_grad()
    def initialize(self, x: Tensor, *, generator: torch.Generator | None = None) -> GaussianMixture:
        """Set the starting parameters from data x (N, D) (k-means++ seeding of the means); returns self."""
        x = self._as64(x)
        k = self.config.num_components
        if len(x) < k:
            raise ValueError(f"need at least {k} points to initialise {k} components, got {len(x)}")
        dev = _generator_device(generator, x.device)
        first = int(torch.randint(0, len(x), (1,), generator=generator, device=dev))
        chosen = [first]
        dist2 = (x - x[first]).pow(2).sum(1)  # (N,) squared distance to the nearest chosen centre
        for _ in range(1, k):
            probs = dist2 / dist2.sum() if dist2.sum() > 0 else torch.full_like(dist2, 1.0 / len(x))
            nxt = int(torch.multinomial(probs.to(dev), 1, generator=generator))
            chosen.append(nxt)
            dist2 = torch.minimum(dist2, (x - x[nxt]).pow(2).sum(1))
        self.means.copy_(x[chosen])
        centred = x - x.mean(0)
        cov = centred.T @ centred / len(x) + self.config.reg_covar * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        self.covariances.copy_(cov.expand_as(self.covariances))
        self.weights.fill_(1.0 / k)
        return self

    @torch.no_grad()
    def fit_em(
        self,
        x: Tensor,
        *,
        max_iter: int | None = None,
        tol: float | None = None,
        generator: torch.Generator | None = None,
        initialize: bool = True,
        fast: bool | None = None,
        callback: Callable[[GaussianMixture, int, dict], None] | None = None,
    ) -> History:
        """Run EM on x (N, D) until the mean log-likelihood improves by less than `tol` or `max_iter` iterations.

        Each iteration is one E step (responsibilities and log p(x) under the current parameters) and one M step.
        The History logs, per iteration, "log_likelihood": the mean log p(x_n) in nats per point BEFORE that
        iteration's M step (EM never lets it decrease), and one final entry after the last M step.
        FAST mode (GMLIB_FAST=1, or fast=True) caps the iterations at FAST_MAX_STEPS.
        """
        start = time.perf_counter()
        x = self._as64(x)
        if initialize:
            self.initialize(x, generator=generator)
        max_iter = self.config.max_iter if max_iter is None else max_iter
        tol = self.config.tol if tol is None else tol
        if fast_mode() if fast is None else fast:
            max_iter = min(max_iter, FAST_MAX_STEPS)
        e_fn, m_fn = self.e_step_fn or e_step, self.m_step_fn or m_step
        history = History()
        previous = -math.inf
        for it in range(max_iter):
            resp, log_px = e_fn(x, self.weights, self.means, self.covariances)  # (N, K), (N,)
            ll = float(log_px.mean())
            history.log_step({"log_likelihood": ll})
            if callback is not None:
                callback(self, it, {"log_likelihood": ll})
            if ll - previous < tol:
                break
            previous = ll
            weights, means, covariances = m_fn(x, resp, self.config.reg_covar)
            self.weights.copy_(weights)
            self.means.copy_(means)
            self.covariances.copy_(covariances)
        else:
            history.log_step({"log_likelihood": float(self.log_prob(x).mean())})
        history.seconds = time.perf_counter() - start
        return history

    @torch.no_grad()
    def responsibilities(self, x: Tensor) -> Tensor:
        """p(k | x_n) under the current parameters: (N, D) -> (N, K) float64 (computed with gmlib's e_step)."""
        return e_step(self._as64(x), self.weights, self.means, self.covariances)[0]

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log p(x) in nats: (N, D) (or (N, C, H, W), flattened) -> (N,) float64."""
        log_joint = self.weights.log()[None] + gaussian_log_prob(self._as64(x), self.means, self.covariances)
        return torch.logsumexp(log_joint, dim=1)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, return_components: bool = False):
        """n points (n, D) float32: a component k ~ pi, then x ~ N(mu_k, Sigma_k); with return_components also
        the components (n,) int64."""
        dev = _generator_device(generator, self.means.device)
        k = torch.multinomial(self.weights.to(dev), n, replacement=True, generator=generator).to(self.means.device)
        eps = torch.randn(n, self.config.dim, generator=generator, device=dev, dtype=torch.float64).to(self.means.device)
        chol = torch.linalg.cholesky(self.covariances)  # (K, D, D)
        x = (self.means[k] + (chol[k] @ eps[:, :, None]).squeeze(2)).float()  # (n, D)
        return (x, k) if return_components else x
