"""Model families, one per module."""

from . import vae

__all__ = ["vae"]
