"""Shared test setup: every test gets its own empty gmlib cache and runs outside FAST mode unless it asks."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_gmlib_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path_factory.mktemp("gmlib-cache")))
    monkeypatch.delenv("GMLIB_FAST", raising=False)
    monkeypatch.delenv("GMLIB_DEVICE", raising=False)


def pytest_configure(config):
    """Small models run fastest on one thread; with several test workers on few cores, more threads thrash."""
    import torch

    torch.set_num_threads(1)
