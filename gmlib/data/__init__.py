"""Data sets for the lessons: 2D toy distributions, sklearn's 8x8 digits (offline) and MNIST / Fashion-MNIST.

    sample_toy2d("8gaussians", 1000, generator=g)     # (1000, 2) float32
    load_digits("train", "dequantized", seed=0)       # TensorDataset((1438, 1, 8, 8), (1438,))
    load_mnist("test", root="/path/to/idx/files")     # TensorDataset((10000, 1, 28, 28), (10000,))

Nothing here downloads unless asked (`download=True`).
"""

from gmlib.data.digits import DIGITS_LEVELS, DIGITS_SPLITS, DIGITS_VARIANTS, digits_loader, load_digits
from gmlib.data.mnist import DatasetUnavailableError, load_fashion_mnist, load_mnist, read_idx
from gmlib.data.toy2d import (
    EIGHT_GAUSSIANS_CENTRES,
    EIGHT_GAUSSIANS_STD,
    TOY2D_NAMES,
    sample_toy2d,
    toy2d_dataset,
)

__all__ = [
    "TOY2D_NAMES",
    "EIGHT_GAUSSIANS_CENTRES",
    "EIGHT_GAUSSIANS_STD",
    "sample_toy2d",
    "toy2d_dataset",
    "DIGITS_LEVELS",
    "DIGITS_SPLITS",
    "DIGITS_VARIANTS",
    "load_digits",
    "digits_loader",
    "DatasetUnavailableError",
    "read_idx",
    "load_mnist",
    "load_fashion_mnist",
]

from gmlib.data.sprites import *  # noqa: E402,F403  (sprites' own __all__)
from gmlib.data.sprites import __all__ as _sprites_all  # noqa: E402
from gmlib.data.text import TEXT_CORPORA, load_corpus  # noqa: E402

__all__ += [*_sprites_all, "TEXT_CORPORA", "load_corpus"]
