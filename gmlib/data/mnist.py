"""MNIST and Fashion-MNIST (28x28 grey images, 10 classes): local idx files or a download on request.

Where `load_mnist` looks, in order (nothing touches the network unless `download=True`):

1. a folder you name: `root=`, else the environment variable GMLIB_MNIST_DIR (GMLIB_FASHION_MNIST_DIR for
   Fashion-MNIST). The idx files may lie in that folder or in its torchvision subfolder `MNIST/raw/`
   (`FashionMNIST/raw/`), each plain or gzipped: `train-images-idx3-ubyte[.gz]`,
   `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`. Only the
   files of the split asked for are needed. A named folder that lacks them is an error (no fall-back).
2. the gmlib cache, `cache_dir() / "mnist"` (or `"fashion-mnist"`), in torchvision's layout: where an earlier
   `download=True` put the files.
3. with `download=True`, torchvision downloads into that cache.

Otherwise, or when the download fails, `DatasetUnavailableError` says what to do instead: the offline data
sets (`load_digits`, `sample_toy2d`, the procedural sprites) or how to point at local idx files.

Images come back as (N, 1, 28, 28) float32 in [0, 1] (grey level / 255), labels as (N,) int64 in 0..9;
60,000 train and 10,000 test images.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from gmlib.config import cache_dir

__all__ = ["DatasetUnavailableError", "read_idx", "load_mnist", "load_fashion_mnist", "MNIST_SPLITS"]

MNIST_SPLITS: tuple[str, ...] = ("train", "test")

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)

_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class DatasetUnavailableError(RuntimeError):
    """A data set is neither on this machine nor downloadable right now; the message says what to do."""


def _names(fashion: bool) -> tuple[str, str, str, str]:
    """(display name, env var, torchvision subfolder / class name, cache subfolder)."""
    if fashion:
        return "Fashion-MNIST", "GMLIB_FASHION_MNIST_DIR", "FashionMNIST", "fashion-mnist"
    return "MNIST", "GMLIB_MNIST_DIR", "MNIST", "mnist"


def _guidance(fashion: bool) -> str:
    """The part of every unavailability message that says what to do instead."""
    display, env, sub, _ = _names(fashion)
    loader = "load_fashion_mnist" if fashion else "load_mnist"
    files = ", ".join(f"{stem}[.gz]" for stems in _FILE_STEMS.values() for stem in stems)
    return (
        f"{display} needs internet access to download it ({loader}(..., download=True)).\n"
        "Offline alternatives: gmlib.data.load_digits() (8x8 digits that ship with scikit-learn), "
        "gmlib.data.sample_toy2d(name, n) (2D toy data), or the procedural sprites.\n"
        f"To use idx files you already have, pass root='/path/to/folder' or set the environment variable "
        f"{env}; the folder (or its {sub}/raw/ subfolder) must hold {files}."
    )


def read_idx(path: str | os.PathLike[str], *, expected_magic: int | None = None) -> np.ndarray:
    """Read one idx file (plain or gzipped) into a uint8 array of the shape its header declares.

    The idx format: a big-endian 4-byte magic 0x0000TTDD (TT = 0x08 for unsigned bytes, DD = number of
    dimensions), DD big-endian uint32 sizes, then the data. `expected_magic` (e.g. `IDX_IMAGES_MAGIC`)
    makes any other magic an error. Raises `ValueError` naming the file for a wrong magic or a file that
    is truncated or too long.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:  # BadGzipFile is an OSError
            raise ValueError(f"{path}: damaged gzip data ({exc})") from exc
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated idx file ({len(raw)} bytes, too short for the 4-byte magic)")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: not the idx file expected: magic number 0x{magic:08x}, expected 0x{expected_magic:08x}")
    if magic >> 16 != 0 or type_code != 0x08 or ndim == 0:
        raise ValueError(
            f"{path}: not an unsigned-byte idx file: magic number 0x{magic:08x} "
            "(expected 0x000008DD with DD >= 1 dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx file (header needs {header} bytes, file has {len(raw)})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64))
    found = len(raw) - header
    if found != expected:
        problem = "truncated" if found < expected else "too long"
        raise ValueError(f"{path}: {problem} idx file: shape {shape} needs {expected} data bytes, found {found}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find(folder: Path, stem: str) -> Path | None:
    """`folder/stem` or `folder/stem.gz`, whichever exists first, else None."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _locate(folders: list[Path], split: str) -> tuple[Path, Path] | list[str]:
    """The (images, labels) files of `split` from the first folder holding both, else the stems missing."""
    stems = _FILE_STEMS[split]
    for folder in folders:
        found = [_find(folder, stem) for stem in stems]
        if all(found):
            return found[0], found[1]
    # report what is missing from the folder that came closest (the first one, on a tie)
    best = max(folders, key=lambda f: sum(_find(f, s) is not None for s in stems))
    return [stem for stem in stems if _find(best, stem) is None]


def _to_dataset(images: np.ndarray | Tensor, labels: np.ndarray | Tensor, source: str) -> TensorDataset:
    """uint8 images (N, 28, 28), labels (N,) -> dataset(float32 (N, 1, 28, 28) in [0, 1], int64 (N,))."""
    images = torch.as_tensor(images)
    labels = torch.as_tensor(labels)
    if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise ValueError(f"{source}: images have shape {tuple(images.shape)}, expected (N, 28, 28)")
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"{source}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}; "
            "the image and label files do not belong together"
        )
    if labels.numel() and int(labels.max()) > 9:
        raise ValueError(f"{source}: labels must lie in 0..9, found {int(labels.max())}")
    x = images.to(torch.float32).div_(255.0).unsqueeze(1)  # (N, 1, 28, 28)
    return TensorDataset(x.contiguous(), labels.to(torch.int64))


def _read_split(files: tuple[Path, Path]) -> TensorDataset:
    images_path, labels_path = files
    images = read_idx(images_path, expected_magic=IDX_IMAGES_MAGIC)  # (N, 28, 28) uint8
    labels = read_idx(labels_path, expected_magic=IDX_LABELS_MAGIC)  # (N,) uint8
    return _to_dataset(images, labels, f"{images_path} / {labels_path.name}")


def load_mnist(
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    fashion: bool = False,
    download: bool = False,
) -> TensorDataset:
    """MNIST (or Fashion-MNIST with `fashion=True`) as `TensorDataset(images, labels)`.

    split:    "train" (60,000 images) or "test" (10,000).
    root:     a folder holding the idx files (see the module docstring); default: the environment variable
              GMLIB_MNIST_DIR / GMLIB_FASHION_MNIST_DIR, then the gmlib cache.
    download: allow torchvision to download into the gmlib cache when no local copy exists.

    Returns images (N, 1, 28, 28) float32 in [0, 1] and labels (N,) int64 in 0..9.
    Raises `DatasetUnavailableError` when the data are neither local nor downloadable, and `ValueError` for
    a damaged idx file.
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(map(repr, MNIST_SPLITS))}")
    display, env, sub, cache_name = _names(fashion)

    # 1. a folder named by the caller or the environment: use it or fail, never fall back
    named = root if root is not None else (os.environ.get(env, "").strip() or None)
    if named is not None:
        folder = Path(named).expanduser()
        folders = [folder, folder / sub / "raw"]
        found = _locate(folders, split)
        if isinstance(found, tuple):
            return _read_split(found)
        source = "root=" if root is not None else f"the environment variable {env}"
        raise DatasetUnavailableError(
            f"{display} {split} split not found in {folder} (given by {source}): missing "
            f"{' and '.join(f'{stem}[.gz]' for stem in found)}; searched {', '.join(map(str, folders))}.\n"
            + _guidance(fashion)
        )

    # 2. an earlier download in the gmlib cache (torchvision's layout)
    cache = cache_dir() / cache_name
    found = _locate([cache / sub / "raw"], split)
    if isinstance(found, tuple):
        return _read_split(found)

    # 3. download, only when asked
    if not download:
        raise DatasetUnavailableError(
            f"{display} ({split} split) is not on this machine (looked in {cache / sub / 'raw'}) and "
            "download=False.\n" + _guidance(fashion)
        )
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, sub)
    try:
        dataset = dataset_class(root=str(cache), train=(split == "train"), download=True)
    except Exception as exc:  # torchvision reports network trouble as URLError, OSError or RuntimeError
        raise DatasetUnavailableError(
            f"Downloading {display} into {cache} failed ({type(exc).__name__}: {exc}).\n" + _guidance(fashion)
        ) from exc
    return _to_dataset(dataset.data, dataset.targets, f"torchvision {sub} in {cache}")


def load_fashion_mnist(
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> TensorDataset:
    """Fashion-MNIST: `load_mnist(split, root=root, fashion=True, download=download)`."""
    return load_mnist(split, root=root, fashion=True, download=download)
