"""Device choice and seeding.

Only entry points (`fit`, a notebook's setup cell) call `get_device`; library code takes the device from
its inputs, a buffer or a parameter (`device_of`), so nothing depends on global device state.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["get_device", "to_device", "device_of", "seed_everything"]


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: cuda, then mps, then cpu.

    `prefer` (or the environment variable GMLIB_DEVICE) forces one, e.g. "cpu" to compare timings.
    """
    choice = prefer or os.environ.get("GMLIB_DEVICE", "").strip() or None
    if choice is not None:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_device(obj, device: torch.device | str):
    """Move a tensor, module, or (nested) list/tuple/dict of them to `device`; other values pass through."""
    if isinstance(obj, (Tensor, nn.Module)):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        moved = [to_device(v, device) for v in obj]
        return type(obj)(moved) if isinstance(obj, list) else tuple(moved)
    return obj


def device_of(obj) -> torch.device:
    """The device of a tensor, or of a module's first parameter or buffer (cpu for an empty module)."""
    if isinstance(obj, Tensor):
        return obj.device
    if isinstance(obj, nn.Module):
        for t in obj.parameters():
            return t.device
        for t in obj.buffers():
            return t.device
        return torch.device("cpu")
    raise TypeError(f"device_of expects a Tensor or nn.Module, got {type(obj).__name__}")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); returns a CPU `torch.Generator` seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
