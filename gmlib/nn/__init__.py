"""Building blocks shared by the model families."""

from .blocks import MLP, randn_like_with

__all__ = ["MLP", "randn_like_with"]
