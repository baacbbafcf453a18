"""gmlib: reference implementations and tools for the course Generative Models, Hands-On."""

from . import data, diffusion, grading, models, viz
from .checkpoints import load_or_train
from .config import cache_dir, fast_mode
from .device import device_of, get_device, seed_everything, to_device
from .train import History, fit

__version__ = "0.1.0"

__all__ = [
    "data",
    "diffusion",
    "grading",
    "models",
    "viz",
    "load_or_train",
    "cache_dir",
    "fast_mode",
    "device_of",
    "get_device",
    "seed_everything",
    "to_device",
    "History",
    "fit",
]
