"""scikit-learn's 8x8 handwritten digits (1797 images, 10 classes): the course's offline image data set.

The raw images hold integer grey levels k in {0, ..., 16}: `DIGITS_LEVELS` = 17 levels. Three views:

    continuous   x = k / 16                        in [0, 1], 17 distinct values (for AEs, VAEs, GANs, DDPM)
    binarized    x = 1[k / 16 >= 0.5] in {0, 1}    (Bernoulli decoders, RBMs, PixelCNN with 2 levels)
    dequantized  x = (k + u) / 17, u ~ U[0, 1)     in [0, 1), continuous density models (flows)

Dequantisation bookkeeping (lesson 05): level k maps to the bin [k/17, (k+1)/17) of width 1/17. A density
p(x) on [0, 1)^D that is fitted to dequantized data lower-bounds the discrete model P(k) = integral of p over
the bin, and (by Jensen) log P(k) >= E_u[log p((k + u)/17)] - D log 17. So for these images (D = 64)

    discrete log-prob (nats)    >=  continuous log-density - 64 * log(17)
    discrete bits per dimension <=  -(log p(x) - D log 17) / (D log 2)

i.e. a log-density in the continuous space relates to the discrete log-prob by + D log 17 (the continuous
value is higher). u is drawn once per `seed` for all 1797 images, so the same image gets the same noise in
every split and call; a model that wants fresh noise each epoch adds it itself from the raw levels.
u is kept a hair (1e-5) inside [0, 1) so float32 rounding never carries a value into the next bin:
floor(17 x) == k holds exactly for every pixel.

The train/test split is FIXED: a stratified 80/20 split made once from NumPy's legacy `RandomState(0)` (whose
stream NumPy keeps stable across versions), independent of `seed`, so train and test are disjoint and the same
on every machine and call: 1438 train and 359 test images, every class in both. The raw arrays and the split
are cached in-process, so repeated calls cost only a copy.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = ["DIGITS_LEVELS", "DIGITS_SPLITS", "DIGITS_VARIANTS", "load_digits", "digits_loader"]

DIGITS_LEVELS = 17  # raw grey levels 0..16
DIGITS_SPLITS: tuple[str, ...] = ("train", "test", "all")
DIGITS_VARIANTS: tuple[str, ...] = ("continuous", "binarized", "dequantized")

_TEST_FRACTION = 0.2
_SPLIT_SEED = 0
_DEQUANT_MARGIN = 1e-5  # keeps u in [margin, 1 - margin] so floor(17 x) == k survives float32 rounding


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """The raw data, read-only: images (1797, 8, 8) uint8 in 0..16 and labels (1797,) int64."""
    from sklearn.datasets import load_digits as _sklearn_load_digits

    bunch = _sklearn_load_digits()
    images = bunch.images.astype(np.uint8)  # (N, 8, 8); the float64 originals are exact integers
    labels = bunch.target.astype(np.int64)  # (N,)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@functools.lru_cache(maxsize=1)
def _split_indices() -> dict[str, np.ndarray]:
    """Row indices of each split into the raw arrays (sorted, read-only); "all" is 0..N-1.

    Per class c (in order 0..9): permute that class's indices with the shared RandomState(0) and send the
    first round(0.2 * count) to test.
    """
    _, labels = _raw_digits()
    rng = np.random.RandomState(_SPLIT_SEED)
    test_parts = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)  # (n_c,)
        n_test = int(round(_TEST_FRACTION * len(members)))
        test_parts.append(rng.permutation(members)[:n_test])
    test = np.sort(np.concatenate(test_parts))
    train = np.setdiff1d(np.arange(len(labels)), test)  # sorted
    splits = {"train": train, "test": test, "all": np.arange(len(labels))}
    for idx in splits.values():
        idx.setflags(write=False)
    return splits


def _check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of {', '.join(map(repr, choices))}")


def load_digits(split: str = "train", variant: str = "continuous", *, seed: int = 0) -> TensorDataset:
    """The 8x8 digits as a `TensorDataset(images, labels)`.

    split:   "train" (1438 images), "test" (359) or "all" (1797); fixed, `seed` does not change it.
    variant: "continuous" (k/16), "binarized" (k/16 >= 0.5) or "dequantized" ((k + u)/17); see the module.
    seed:    seeds the dequantisation noise u (a `torch.Generator`); ignored by the other variants.

    Returns images (N, 1, 8, 8) float32 in [0, 1] and labels (N,) int64 in 0..9, rows in the original order.
    """
    _check_choice("split", split, DIGITS_SPLITS)
    _check_choice("variant", variant, DIGITS_VARIANTS)
    raw_images, raw_labels = _raw_digits()
    idx = _split_indices()[split]  # (N,)

    raw = torch.from_numpy(raw_images.astype(np.float32))  # (1797, 8, 8), a fresh writable copy
    if variant == "continuous":
        x = raw / (DIGITS_LEVELS - 1)
    elif variant == "binarized":
        x = (raw / (DIGITS_LEVELS - 1) >= 0.5).float()
    else:
        generator = torch.Generator().manual_seed(seed)
        u = torch.rand(raw.shape, generator=generator, dtype=torch.float64)  # (1797, 8, 8), all images
        u = _DEQUANT_MARGIN + (1.0 - 2.0 * _DEQUANT_MARGIN) * u
        x = ((raw.double() + u) / DIGITS_LEVELS).float()

    index = torch.from_numpy(idx.astype(np.int64))
    images = x[index].unsqueeze(1).contiguous()  # (N, 1, 8, 8)
    labels = torch.from_numpy(raw_labels[idx].copy())  # (N,) int64
    return TensorDataset(images, labels)


def digits_loader(
    split: str = "train",
    variant: str = "continuous",
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader over `load_digits(split, variant, seed=seed)`; batches `[images (B,1,8,8), labels (B,)]`.

    Shuffling uses its own `torch.Generator` seeded by `seed`, so the batch order is reproducible and
    independent of the global RNG. The last batch may be smaller than `batch_size`.
    """
    dataset = load_digits(split, variant, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
