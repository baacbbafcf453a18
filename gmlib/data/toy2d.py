"""Two-dimensional toy distributions for density models, GANs and flows.

Every sampler is pure torch, so `generator=` makes a draw reproducible (and lets it run on the generator's
device). Points are float32 in "standardised-ish" units: each set is centred near the origin with a spread of
order 1-3 per coordinate and lies (apart from its noise tails) inside the square [-4, 4]^2.

| name           | shape of the data                                                 | default noise |
|----------------|-------------------------------------------------------------------|---------------|
| "moons"        | two half circles of radius 2, x in [-3, 3], y in [-1.5, 1.5]      | 0.1           |
| "8gaussians"   | mixture of 8 equal Gaussians, centres on a circle of radius 2     | 0.2 (= std)   |
| "swissroll"    | spiral r = t / 5, angle t in [1.5 pi, 4.5 pi]; r in [0.94, 2.83]  | 0.2           |
| "checkerboard" | uniform on the 8 dark squares of a 4 x 4 board covering [-4, 4]^2 | 0.0           |
| "rings"        | 4 concentric circles, radii 0.75, 1.5, 2.25, 3 (equal weights)    | 0.08          |

`noise` is the standard deviation of isotropic Gaussian noise added to every point, in the same units as the
points. The noise draw is made whatever its size, so the same generator state with a different `noise` moves
the same underlying points. The scalings follow FFJORD's toy data (Grathwohl et al., 2019) where it has the
set (8 gaussians aside: radius 2 and std 0.2, so the modes are ten standard deviations apart).

`EIGHT_GAUSSIANS_CENTRES` (8, 2) holds the mode centres, for counting the modes a generator covers.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = [
    "TOY2D_NAMES",
    "EIGHT_GAUSSIANS_CENTRES",
    "EIGHT_GAUSSIANS_STD",
    "sample_toy2d",
    "toy2d_dataset",
]

TOY2D_NAMES: tuple[str, ...] = ("moons", "8gaussians", "swissroll", "checkerboard", "rings")

_EIGHT_GAUSSIANS_RADIUS = 2.0
EIGHT_GAUSSIANS_STD = 0.2  # default per-coordinate std of each of the 8 modes

_angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
# (8, 2): centre k at angle k * 45 degrees, starting on the positive x axis
EIGHT_GAUSSIANS_CENTRES: Tensor = (_EIGHT_GAUSSIANS_RADIUS * torch.stack([_angles.cos(), _angles.sin()], dim=1)).float()
del _angles

_DEFAULT_NOISE = {
    "moons": 0.1,
    "8gaussians": EIGHT_GAUSSIANS_STD,
    "swissroll": 0.2,
    "checkerboard": 0.0,
    "rings": 0.08,
}
_RING_RADII = (3.0, 2.25, 1.5, 0.75)


def _moons(n: int, g: torch.Generator | None, device: torch.device) -> Tensor:
    """Noise-free two moons (sklearn's layout, centred and doubled): (n, 2)."""
    upper = torch.rand(n, generator=g, device=device) < 0.5  # (n,) which moon
    t = torch.rand(n, generator=g, device=device) * math.pi  # (n,) angle along the half circle
    x = torch.where(upper, t.cos(), 1.0 - t.cos())
    y = torch.where(upper, t.sin(), 0.5 - t.sin())
    return 2.0 * (torch.stack([x, y], dim=1) - torch.tensor([0.5, 0.25], device=device))  # (n, 2)


def _eight_gaussians(n: int, g: torch.Generator | None, device: torch.device) -> Tensor:
    """Noise-free 8 gaussians: each point sits on its (uniformly chosen) centre, (n, 2)."""
    k = torch.randint(0, 8, (n,), generator=g, device=device)  # (n,) mode index
    return EIGHT_GAUSSIANS_CENTRES.to(device)[k]  # (n, 2)


def _swissroll(n: int, g: torch.Generator | None, device: torch.device) -> Tensor:
    """Noise-free swiss roll (sklearn's 2D slice, divided by 5): (n, 2)."""
    t = 1.5 * math.pi * (1.0 + 2.0 * torch.rand(n, generator=g, device=device))  # (n,) in [1.5 pi, 4.5 pi)
    return torch.stack([t * t.cos(), t * t.sin()], dim=1) / 5.0  # (n, 2)


def _checkerboard(n: int, g: torch.Generator | None, device: torch.device) -> Tensor:
    """Uniform on the dark squares of a 4 x 4 checkerboard on [-4, 4]^2: (n, 2)."""
    x1 = torch.rand(n, generator=g, device=device) * 4.0 - 2.0  # (n,) in [-2, 2)
    row = torch.randint(0, 2, (n,), generator=g, device=device).float()  # (n,) lower or upper pair of rows
    x2 = torch.rand(n, generator=g, device=device) - 2.0 * row  # (n,) in [0, 1) or [-2, -1)
    x2 = x2 + torch.floor(x1).remainder(2.0)  # shift odd columns up one square
    return 2.0 * torch.stack([x1, x2], dim=1)  # (n, 2)


def _rings(n: int, g: torch.Generator | None, device: torch.device) -> Tensor:
    """Noise-free concentric rings, ring chosen uniformly, angle uniform: (n, 2)."""
    k = torch.randint(0, len(_RING_RADII), (n,), generator=g, device=device)  # (n,) ring index
    r = torch.tensor(_RING_RADII, device=device)[k]  # (n,)
    theta = 2.0 * math.pi * torch.rand(n, generator=g, device=device)  # (n,)
    return torch.stack([r * theta.cos(), r * theta.sin()], dim=1)  # (n, 2)


_SAMPLERS: dict[str, Callable[[int, torch.Generator | None, torch.device], Tensor]] = {
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "swissroll": _swissroll,
    "checkerboard": _checkerboard,
    "rings": _rings,
}


def sample_toy2d(
    name: str,
    n: int,
    *,
    generator: torch.Generator | None = None,
    noise: float | None = None,
) -> Tensor:
    """Draw `n` points from the toy distribution `name`: returns (n, 2) float32.

    name:      one of `TOY2D_NAMES` ("moons", "8gaussians", "swissroll", "checkerboard", "rings").
    n:         number of points, at least 1.
    generator: source of randomness (the global torch RNG when None); the points are made on its device.
    noise:     std of the isotropic Gaussian noise added to each point, in data units; None picks the
               set's default (see the module docstring).
    """
    if name not in _SAMPLERS:
        raise ValueError(f"unknown toy2d data set {name!r}; choose one of {', '.join(TOY2D_NAMES)}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"n must be a positive number of points, got {n}")
    sigma = _DEFAULT_NOISE[name] if noise is None else float(noise)
    if not sigma >= 0.0:  # also rejects nan
        raise ValueError(f"noise must be a standard deviation >= 0, got {noise}")
    device = generator.device if generator is not None else torch.device("cpu")
    points = _SAMPLERS[name](n, generator, device)  # (n, 2)
    eps = torch.randn(n, 2, generator=generator, device=device)  # (n, 2)
    return (points + sigma * eps).float()


def toy2d_dataset(name: str, n: int, *, seed: int = 0, noise: float | None = None) -> TensorDataset:
    """A fixed sample of `n` points from `name` (see `sample_toy2d`), drawn with a generator seeded by `seed`.

    Returns a `TensorDataset` holding one tensor (n, 2) float32, so a batch from its loader is `[x]`.
    """
    generator = torch.Generator().manual_seed(seed)
    return TensorDataset(sample_toy2d(name, n, generator=generator, noise=noise))
