"""config and device helpers."""

from __future__ import annotations

import torch
from torch import nn

from gmlib.config import cache_dir, fast_mode
from gmlib.device import device_of, get_device, seed_everything, to_device


def test_fast_mode_reads_the_environment(monkeypatch):
    """Is FAST mode on exactly for the documented true values?"""
    for value, expected in [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)]:
        monkeypatch.setenv("GMLIB_FAST", value)
        assert fast_mode() is expected


def test_cache_dir_follows_gmlib_cache(monkeypatch, tmp_path):
    """Is the cache folder GMLIB_CACHE, created on demand?"""
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path / "a" / "b"))
    assert cache_dir() == tmp_path / "a" / "b" and cache_dir().is_dir()


def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    """Is the order cuda > mps > cpu, and can GMLIB_DEVICE force one?"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device().type == "cpu"
    monkeypatch.setenv("GMLIB_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device().type == "cpu"


def test_device_of_and_to_device():
    """Does device_of read a module's parameters, and to_device move nested containers?"""
    assert device_of(nn.Linear(2, 2)).type == "cpu"
    assert device_of(nn.Sequential()).type == "cpu"
    moved = to_device({"a": [torch.zeros(1), (torch.ones(1), 3)]}, "cpu")
    assert moved["a"][1][1] == 3 and isinstance(moved["a"], list) and isinstance(moved["a"][1], tuple)


def test_seed_everything_is_reproducible():
    """Does seeding twice give the same torch numbers and an equally seeded generator?"""
    g1 = seed_everything(3)
    a = torch.rand(3)
    g2 = seed_everything(3)
    torch.testing.assert_close(a, torch.rand(3))
    torch.testing.assert_close(torch.rand(2, generator=g1), torch.rand(2, generator=g2))
