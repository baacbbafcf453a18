"""Tests of gmlib.data: toy 2D samplers, the 8x8 digits with their fixed split, and the MNIST idx reader.

No test touches the network: the MNIST tests read the local test split (skipped where it is absent) and
replace torchvision's dataset classes when they check the download path.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from gmlib.data import (
    DIGITS_LEVELS,
    EIGHT_GAUSSIANS_CENTRES,
    EIGHT_GAUSSIANS_STD,
    TOY2D_NAMES,
    DatasetUnavailableError,
    digits_loader,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_idx,
    sample_toy2d,
    toy2d_dataset,
)
from gmlib.data.digits import _split_indices


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------------- toy2d


@pytest.mark.parametrize("name", TOY2D_NAMES)
def test_toy2d_shape_dtype_finite_and_range(name):
    """Does every toy set give (n, 2) finite float32 points inside the documented [-4, 4] box (plus noise)?"""
    x = sample_toy2d(name, 2000, generator=_gen(0))
    assert x.shape == (2000, 2)
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert x.abs().max() < 5.0
    assert (x.abs() <= 4.0).float().mean() > 0.99
    assert (x.std(dim=0) > 0.5).all() and (x.std(dim=0) < 3.0).all()  # standardised-ish spread


@pytest.mark.parametrize("name", TOY2D_NAMES)
def test_toy2d_reproducible_with_generator(name):
    """Does the same generator seed give the same points, and a different seed different points?"""
    a = sample_toy2d(name, 500, generator=_gen(3))
    b = sample_toy2d(name, 500, generator=_gen(3))
    c = sample_toy2d(name, 500, generator=_gen(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


def test_toy2d_unknown_name_lists_choices():
    """Does an unknown name raise a ValueError that lists every valid name?"""
    with pytest.raises(ValueError) as info:
        sample_toy2d("spiral", 10)
    for name in TOY2D_NAMES:
        assert name in str(info.value)


@pytest.mark.parametrize("n", [0, -3])
def test_toy2d_rejects_non_positive_n(n):
    """Is a ValueError raised when fewer than one point is asked for?"""
    with pytest.raises(ValueError, match="n must be"):
        sample_toy2d("moons", n)


def test_toy2d_rejects_negative_noise():
    """Is a negative noise level refused?"""
    with pytest.raises(ValueError, match="noise"):
        sample_toy2d("rings", 10, noise=-0.1)


def test_eight_gaussians_centres_on_circle():
    """Are the 8 centres on a circle of radius 2, 45 degrees apart (checked against angles computed here)?"""
    assert EIGHT_GAUSSIANS_CENTRES.shape == (8, 2)
    angles = torch.tensor([k * math.pi / 4 for k in range(8)])
    expected = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    torch.testing.assert_close(EIGHT_GAUSSIANS_CENTRES, expected)


def test_eight_gaussians_points_cluster_near_centres():
    """Do 8gaussians points lie near a centre, with each of the 8 modes getting about 1/8 of them?"""
    n = 8000
    x = sample_toy2d("8gaussians", n, generator=_gen(0))
    dist = torch.cdist(x, EIGHT_GAUSSIANS_CENTRES)  # (n, 8)
    nearest, mode = dist.min(dim=1)
    # the distance of a 2D Gaussian point to its mean is Rayleigh: P(d > 3 sigma) = exp(-4.5) ~ 1.1%
    assert (nearest < 3 * EIGHT_GAUSSIANS_STD).float().mean() > 0.97
    counts = torch.bincount(mode, minlength=8).float() / n
    assert ((counts > 0.10) & (counts < 0.15)).all(), counts


def test_noise_free_sets_lie_on_their_curves():
    """With noise=0, does each set lie exactly on the shape its docstring describes?"""
    g = _gen(1)
    pts = sample_toy2d("8gaussians", 400, generator=g, noise=0.0)
    assert torch.cdist(pts, EIGHT_GAUSSIANS_CENTRES).min(dim=1).values.max() < 1e-6

    pts = sample_toy2d("rings", 400, generator=g, noise=0.0)
    radii = torch.tensor([0.75, 1.5, 2.25, 3.0])
    assert (pts.norm(dim=1, keepdim=True) - radii).abs().min(dim=1).values.max() < 1e-5

    pts = sample_toy2d("moons", 400, generator=g, noise=0.0)  # circles of radius 2 around (-1, -0.5), (1, 0.5)
    d_upper = (pts - torch.tensor([-1.0, -0.5])).norm(dim=1)
    d_lower = (pts - torch.tensor([1.0, 0.5])).norm(dim=1)
    upper = (d_upper - 2.0).abs() < 1e-5
    lower = (d_lower - 2.0).abs() < 1e-5
    assert (upper | lower).all()
    assert pts[upper, 1].min() > -0.5 - 1e-5 and pts[lower, 1].max() < 0.5 + 1e-5  # half circles

    pts = sample_toy2d("swissroll", 400, generator=g, noise=0.0)  # x = (t cos t, t sin t) / 5
    t = 5.0 * pts.norm(dim=1)
    assert t.min() >= 1.5 * math.pi - 1e-4 and t.max() <= 4.5 * math.pi + 1e-4
    torch.testing.assert_close(pts, torch.stack([t * t.cos(), t * t.sin()], dim=1) / 5.0, atol=1e-4, rtol=0)


def test_checkerboard_fills_only_dark_squares():
    """Do checkerboard points fall only in the 8 squares of one colour, each holding about 1/8 of them?"""
    x = sample_toy2d("checkerboard", 8000, generator=_gen(2))
    assert (x.abs() <= 4.0).all()
    col, row = torch.floor(x[:, 0] / 2.0), torch.floor(x[:, 1] / 2.0)  # square indices in -2..1
    assert ((col + row).remainder(2) == 0).all()
    squares = torch.unique(torch.stack([col, row], dim=1), dim=0, return_counts=True)
    assert squares[0].shape[0] == 8
    assert (squares[1] > 800).all()


def test_toy2d_dataset_matches_seeded_sample():
    """Does toy2d_dataset hold one (n, 2) tensor equal to sample_toy2d with a generator seeded by `seed`?"""
    ds = toy2d_dataset("moons", 300, seed=5)
    assert len(ds) == 300 and len(ds.tensors) == 1
    torch.testing.assert_close(ds.tensors[0], sample_toy2d("moons", 300, generator=_gen(5)), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------- digits


def _sklearn_images() -> np.ndarray:
    """The raw 0..16 levels straight from scikit-learn: (1797, 8, 8) float64."""
    from sklearn.datasets import load_digits as sk_load_digits

    return sk_load_digits().images


@pytest.mark.parametrize("variant", ["continuous", "binarized", "dequantized"])
@pytest.mark.parametrize("split,size", [("train", 1438), ("test", 359), ("all", 1797)])
def test_digits_shapes_dtypes_range(split, size, variant):
    """Does every split and variant give (N, 1, 8, 8) float32 images in [0, 1] and (N,) int64 labels 0..9?"""
    x, y = load_digits(split, variant).tensors
    assert x.shape == (size, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (size,) and y.dtype == torch.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(y.tolist()) == set(range(10))


def test_digits_continuous_is_raw_over_16():
    """Is the continuous view sklearn's raw levels / 16, with 17 levels in all?"""
    x, _ = load_digits("all", "continuous").tensors
    torch.testing.assert_close(x[:, 0].double(), torch.from_numpy(_sklearn_images()) / 16.0)
    levels = x * 16
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-6)
    assert torch.unique(levels.round()).numel() == DIGITS_LEVELS == 17


def test_digits_binarized_is_thresholded_continuous():
    """Is the binarized view only 0/1, equal to continuous >= 0.5?"""
    xb, _ = load_digits("all", "binarized").tensors
    xc, _ = load_digits("all", "continuous").tensors
    assert set(torch.unique(xb).tolist()) == {0.0, 1.0}
    assert torch.equal(xb, (xc >= 0.5).float())


def test_digits_dequantized_stays_in_its_bin():
    """Does floor(17 x) give back the raw level for every dequantized pixel, with noise spread over the bin?"""
    xd, _ = load_digits("all", "dequantized", seed=0).tensors
    raw = torch.from_numpy(_sklearn_images()).float().unsqueeze(1)  # (1797, 1, 8, 8) levels 0..16
    assert torch.equal(torch.floor(xd * DIGITS_LEVELS), raw)
    assert xd.max() < 1.0
    u = xd.double() * DIGITS_LEVELS - raw.double()  # the noise, U[0, 1): mean 1/2, variance 1/12
    assert abs(u.mean().item() - 0.5) < 0.01
    assert abs(u.var().item() - 1 / 12) < 0.005


def test_digits_dequantized_seeded():
    """Does the dequantisation noise repeat for a seed, change with it, and agree between splits?"""
    a, _ = load_digits("train", "dequantized", seed=1).tensors
    b, _ = load_digits("train", "dequantized", seed=1).tensors
    c, _ = load_digits("train", "dequantized", seed=2).tensors
    whole, _ = load_digits("all", "dequantized", seed=1).tensors
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, whole[torch.from_numpy(_split_indices()["train"].copy())])


def test_digits_split_sizes_add_up_and_indices_disjoint():
    """Do train and test partition all 1797 images (by index bookkeeping)?"""
    idx = _split_indices()
    train, test = set(idx["train"].tolist()), set(idx["test"].tolist())
    assert len(train) == 1438 and len(test) == 359
    assert not train & test
    assert train | test == set(range(1797))
    assert len(load_digits("train")) + len(load_digits("test")) == len(load_digits("all")) == 1797


def test_digits_train_test_disjoint_by_content():
    """Are train and test digits disjoint as images (no test image also appears in train)?"""
    rows = {row.tobytes() for row in _sklearn_images().reshape(1797, 64)}
    assert len(rows) == 1797  # premise: sklearn's digits hold no exact duplicate, so content = identity
    xtr, _ = load_digits("train").tensors
    xte, _ = load_digits("test").tensors
    train_rows = {r.tobytes() for r in xtr.reshape(-1, 64).numpy()}
    test_rows = {r.tobytes() for r in xte.reshape(-1, 64).numpy()}
    assert len(train_rows) == 1438 and len(test_rows) == 359
    assert not train_rows & test_rows


def test_digits_split_deterministic_and_independent_of_seed():
    """Is the split the same on every call and for every seed?"""
    x0, y0 = load_digits("test", "continuous", seed=0).tensors
    x1, y1 = load_digits("test", "continuous", seed=123).tensors
    assert torch.equal(x0, x1) and torch.equal(y0, y1)


def test_digits_split_fingerprint():
    """Is the split the one every machine gets (pinned: its test indices must not drift across versions)?"""
    test = _split_indices()["test"]
    assert test[:12].tolist() == [3, 7, 13, 19, 36, 38, 43, 48, 53, 55, 60, 62]
    digest = hashlib.sha256(test.astype("<i8").tobytes()).hexdigest()
    assert digest == "3530be80b9605f4c4adc46d0ee3006a356c16968a8efcc58f24463bc820d5ef9"


def test_digits_split_is_stratified():
    """Does every class appear in both splits, with about 20% of each class in test?"""
    _, all_labels = load_digits("all").tensors
    _, test_labels = load_digits("test").tensors
    _, train_labels = load_digits("train").tensors
    total = torch.bincount(all_labels, minlength=10).float()
    test_counts = torch.bincount(test_labels, minlength=10).float()
    assert (torch.bincount(train_labels, minlength=10) > 0).all() and (test_counts > 0).all()
    assert ((test_counts - 0.2 * total).abs() <= 1.0).all()


def test_digits_returns_fresh_tensors():
    """Does editing a returned tensor leave the next call untouched (the in-process cache is protected)?"""
    x, y = load_digits("train").tensors
    x.zero_()
    y.fill_(7)
    x2, y2 = load_digits("train").tensors
    assert x2.max() == 1.0 and len(set(y2.tolist())) == 10


@pytest.mark.parametrize("kwargs,word", [({"split": "val"}, "train"), ({"variant": "binary"}, "dequantized")])
def test_digits_bad_choice_lists_choices(kwargs, word):
    """Does an unknown split or variant raise a ValueError that lists the choices?"""
    with pytest.raises(ValueError, match=word):
        load_digits(**kwargs)


def test_digits_loader_batches_and_seeded_order():
    """Does digits_loader cover the split once per epoch, in an order fixed by its seed?"""
    loader = digits_loader("train", "binarized", batch_size=100, seed=3)
    batches = list(loader)
    assert batches[0][0].shape == (100, 1, 8, 8) and batches[0][1].shape == (100,)
    assert sum(len(b[1]) for b in batches) == 1438
    labels_a = torch.cat([b[1] for b in batches])
    labels_b = torch.cat([b[1] for b in digits_loader("train", "binarized", batch_size=100, seed=3)])
    labels_c = torch.cat([b[1] for b in digits_loader("train", "binarized", batch_size=100, seed=4)])
    assert torch.equal(labels_a, labels_b) and not torch.equal(labels_a, labels_c)
    _, y = load_digits("train").tensors
    assert torch.equal(torch.bincount(labels_a, minlength=10), torch.bincount(y, minlength=10))


# ----------------------------------------------------------------------------------------------------- MNIST

_T10K = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _mnist_t10k_dir() -> Path | None:
    """The folder holding the MNIST test split: GMLIB_TEST_MNIST_DIR, else ../shared/data/mnist-t10k."""
    candidates = []
    if os.environ.get("GMLIB_TEST_MNIST_DIR"):
        candidates.append(Path(os.environ["GMLIB_TEST_MNIST_DIR"]))
    candidates.append(Path(__file__).resolve().parents[3] / "shared/data/mnist-t10k")
    for folder in candidates:
        if all((folder / name).is_file() for name in _T10K):
            return folder
    return None


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    folder = _mnist_t10k_dir()
    if folder is None:
        pytest.skip("the MNIST test split (mnist-t10k) is not on this machine")
    return folder


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    return load_mnist("test", root=mnist_dir)


@pytest.fixture
def no_mnist_env(monkeypatch, tmp_path):
    """An empty gmlib cache and no MNIST folders in the environment."""
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GMLIB_MNIST_DIR", raising=False)
    monkeypatch.delenv("GMLIB_FASHION_MNIST_DIR", raising=False)


def _unzip_into(src_dir: Path, dst_dir: Path) -> None:
    """Decompress the t10k files of `src_dir` into `dst_dir` (torchvision keeps them uncompressed)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for name in _T10K:
        (dst_dir / name.removesuffix(".gz")).write_bytes(gzip.decompress((src_dir / name).read_bytes()))


def test_mnist_test_split_from_idx_files(mnist_test):
    """Does the local t10k folder give 10000 (1, 28, 28) images in [0, 1] and about 1000 labels per class?"""
    x, y = mnist_test.tensors
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.dtype == torch.int64 and y.min() == 0 and y.max() == 9
    counts = torch.bincount(y, minlength=10)
    assert ((counts > 850) & (counts < 1200)).all(), counts


def test_read_idx_matches_torchvision_reader(mnist_dir, mnist_test, tmp_path):
    """Does our idx reader agree with torchvision's own reader on the real files?"""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    _unzip_into(mnist_dir, tmp_path)
    ref_x = read_image_file(str(tmp_path / "t10k-images-idx3-ubyte"))  # (10000, 28, 28) uint8
    ref_y = read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte"))  # (10000,)
    x, y = mnist_test.tensors
    assert torch.equal((x[:, 0] * 255).round().to(torch.uint8), ref_x)
    assert torch.equal(y, ref_y.long())
    # the plain (not gzipped) files read the same
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte"), ref_x.numpy())


def test_mnist_env_var_and_torchvision_layout(mnist_dir, mnist_test, tmp_path, monkeypatch, no_mnist_env):
    """Are idx files found through GMLIB_MNIST_DIR and under a torchvision MNIST/raw/ or FashionMNIST/raw/?"""
    _, y_ref = mnist_test.tensors
    monkeypatch.setenv("GMLIB_MNIST_DIR", str(mnist_dir))
    assert torch.equal(load_mnist("test").tensors[1], y_ref)

    _unzip_into(mnist_dir, tmp_path / "tv" / "MNIST" / "raw")
    assert torch.equal(load_mnist("test", root=tmp_path / "tv").tensors[1], y_ref)
    shutil.copytree(tmp_path / "tv" / "MNIST", tmp_path / "tv" / "FashionMNIST")  # stand-in files
    assert torch.equal(load_fashion_mnist("test", root=tmp_path / "tv").tensors[1], y_ref)


def test_mnist_found_in_gmlib_cache(mnist_dir, mnist_test, tmp_path, no_mnist_env):
    """Is an earlier download in the gmlib cache (torchvision layout) used without any root?"""
    _unzip_into(mnist_dir, tmp_path / "cache" / "mnist" / "MNIST" / "raw")
    assert torch.equal(load_mnist("test").tensors[1], mnist_test.tensors[1])


def test_mnist_missing_split_names_file_and_folder(mnist_dir):
    """Does asking for the train split from the t10k-only folder name the missing file and the folder?"""
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist("train", root=mnist_dir)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert str(mnist_dir) in message


def test_mnist_wrong_magic_is_a_clear_error(mnist_dir, tmp_path):
    """Does an images file with a wrong magic number give an error naming the file and the magic?"""
    shutil.copy(mnist_dir / _T10K[1], tmp_path / _T10K[1])
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes((0x00000801).to_bytes(4, "big") + (3).to_bytes(4, "big") + b"\x00\x01\x02")
    with pytest.raises(ValueError, match="magic") as info:
        load_mnist("test", root=tmp_path)
    assert "t10k-images-idx3-ubyte" in str(info.value) and "0x00000803" in str(info.value)


def test_read_idx_small_file_and_damage(tmp_path):
    """Does read_idx honour big-endian dims, and refuse wrong magics, truncated, overlong and broken-gzip files?"""
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    header = (0x00000803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in data.shape)
    good = tmp_path / "good-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(header + data.tobytes()))
    assert np.array_equal(read_idx(good), data)

    cases = {
        "garbage": (b"\x12\x34\x56\x78" + bytes(16), "magic"),
        "truncated": (header + data.tobytes()[:10], "truncated"),
        "overlong": (header + data.tobytes() + b"\x00", "too long"),
        "short": (b"\x00\x00", "truncated"),
        "badgzip.gz": (gzip.compress(header + data.tobytes())[:20], "gzip"),
    }
    for name, (content, word) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=word) as info:
            read_idx(path)
        assert name in str(info.value)
    with pytest.raises(ValueError, match="0x00000801"):
        read_idx(good, expected_magic=0x00000801)


def test_mnist_offline_error_names_alternatives(no_mnist_env, monkeypatch):
    """With nothing local and download=False, is one clear error raised (naming load_digits and root=)
    without calling torchvision?"""
    import torchvision.datasets

    def forbidden(*args, **kwargs):
        raise AssertionError("torchvision must not be called when download=False")

    monkeypatch.setattr(torchvision.datasets, "MNIST", forbidden)
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist("train")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for phrase in ("internet", "load_digits", "sample_toy2d", "root=", "GMLIB_MNIST_DIR"):
        assert phrase in message


@pytest.mark.parametrize("fashion,class_name,display", [(False, "MNIST", "MNIST"), (True, "FashionMNIST", "Fashion-MNIST")])
def test_mnist_download_failure_is_one_clear_error(no_mnist_env, monkeypatch, fashion, class_name, display):
    """Does a network failure during download become a DatasetUnavailableError with the offline guidance?"""
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torchvision.datasets, class_name, offline)
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist("test", fashion=fashion, download=True)
    message = str(info.value)
    assert display in message and "internet" in message and "load_digits" in message and "root=" in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_mnist_bad_split():
    """Does an unknown split raise a ValueError listing train and test?"""
    with pytest.raises(ValueError, match="'train', 'test'"):
        load_mnist("validation")
