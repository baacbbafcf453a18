"""Fixtures for the real-browser tests: a private JupyterLab on a copy of course/ and headless Chromium.

Chromium comes from the system (Debian's `chromium`: `make system-deps`), driven by Playwright's Python
package; Playwright never downloads a browser here. Without a Chromium the tests skip and say so.
Screenshots go to $GM_ARTIFACTS, else tests/browser/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .lab import ROOT, Lab, LabServer, find_chromium

ARTIFACTS = Path(os.environ.get("GM_ARTIFACTS") or ROOT / "tests" / "browser" / "artifacts")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if not path:
        pytest.skip("no Chromium: install it with `make system-deps` (root, Debian: apt-get install chromium) "
                    "or set GM_CHROMIUM=/path/to/chromium")
    return path


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory, chromium):
    """JupyterLab serving a private copy of course/ (so running cells never writes into course/)."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "course"
    shutil.copytree(ROOT / "course", root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    server = LabServer(root, tmp / "home").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(chromium):
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright  # a dev requirement (pyproject): pip install -e '.[dev]'

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def lab(request, browser, lab_server):
    """A fresh browser page on the private JupyterLab; a last screenshot is saved whatever the outcome."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(120_000)  # two shared CI cores: a kernel can take a while to start
    lab = Lab(page, lab_server, ARTIFACTS / request.node.name, workspace=request.node.name.replace("_", "-"))
    yield lab
    try:
        lab.shot("zz-last")
    finally:
        context.close()
