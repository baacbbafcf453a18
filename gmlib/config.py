"""Run-time settings read from the environment.

GMLIB_FAST=1   FAST mode: lessons and `fit` train for a handful of steps (CI, quick checks).
GMLIB_CACHE    folder for trained checkpoints and feature networks (default ~/.cache/gmlib).

Both are read at call time, so a notebook (or a test) can change them with `os.environ` at any point.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fast_mode", "cache_dir", "FAST_MAX_STEPS"]

FAST_MAX_STEPS = 20  # optimisation steps `fit` allows per call in FAST mode

_TRUE = {"1", "true", "yes", "on"}


def fast_mode() -> bool:
    """Is FAST mode on (environment variable GMLIB_FAST set to 1/true/yes/on)?"""
    return os.environ.get("GMLIB_FAST", "").strip().lower() in _TRUE


def cache_dir() -> Path:
    """The checkpoint cache folder (GMLIB_CACHE, default ~/.cache/gmlib), created if missing."""
    raw = os.environ.get("GMLIB_CACHE", "").strip()
    path = Path(raw).expanduser() if raw else Path.home() / ".cache" / "gmlib"
    path.mkdir(parents=True, exist_ok=True)
    return path
