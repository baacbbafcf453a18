"""Small building blocks: an MLP and generator-aware noise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP", "randn_like_with"]


class MLP(nn.Sequential):
    """Linear layers with an activation between them: in_dim -> hidden... -> out_dim (no final activation)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.SiLU):
        dims = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(activation())
        super().__init__(*layers)


def randn_like_with(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like `x`, drawn from `generator` if given (on the generator's device,
    then moved to `x`'s device, so a CPU generator gives the same numbers on every device)."""
    if generator is None:
        return torch.randn_like(x)
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return noise.to(x.device)
