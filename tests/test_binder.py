"""Binder and Colab, as the README offers them: every lesson fits a Binder session's memory (as measured by
benchmarks/lesson_budget.py), and the launch links point at notebooks that exist in this repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER_MB = 2048  # a Binder session's memory: JupyterLab's server and every kernel together
# JupyterLab's own server beside one kernel; tests/browser writes the server's measured peak to
# tests/browser/artifacts/*/memory.json (139-140 MB measured on the development machine): room to spare
SERVER_MB = 300
LESSONS = sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())
BINDER_URL = re.compile(r"https://mybinder\.org/v2/gh/([^/\s)]+/[^/\s)]+)/([^?\s)]+)\?urlpath=lab/tree/([^\s)&]+)")
COLAB_URL = re.compile(r"https://colab\.research\.google\.com/github/([^/\s)]+/[^/\s)]+)/blob/([^/\s)]+)/([^\s)]+\.ipynb)")


def measured_full_runs() -> dict[str, dict]:
    rows = json.loads((ROOT / "benchmarks/results/lessons.json").read_text())["rows"]
    return {r["lesson"]: r for r in rows if r["mode"] == "full"}


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_measured_peak_fits_a_binder_session(lesson):
    """Does the lesson's measured full run (kernel peak) leave room for JupyterLab within Binder's 2 GB?"""
    row = measured_full_runs().get(lesson)
    assert row, (f"{lesson} has no measured full run in benchmarks/results/lessons.json: "
                 f"run `.venv/bin/python benchmarks/lesson_budget.py solutions/{lesson}`")
    assert row["peak_mb"] + SERVER_MB <= BINDER_MB, (
        f"{lesson}: kernel peak {row['peak_mb']} MB + {SERVER_MB} MB for the server exceeds Binder's {BINDER_MB} MB")


def test_readme_launch_links_open_notebooks_that_exist():
    """Do the README's Binder badge and Open-in-Colab links name one repository and notebooks that exist?"""
    readme = (ROOT / "README.md").read_text()
    binder = BINDER_URL.findall(readme)
    colab = COLAB_URL.findall(readme)
    assert binder, "README has no Binder launch link (https://mybinder.org/v2/gh/OWNER/REPO/BRANCH?urlpath=lab/tree/...)"
    assert colab, "README has no Open in Colab link (https://colab.research.google.com/github/OWNER/REPO/blob/...)"
    assert "mybinder.org/badge_logo.svg" in readme, "README has no Binder badge image"
    repos = {repo for repo, _, _ in binder} | {repo for repo, _, _ in colab}
    assert len(repos) == 1, f"the launch links name several repositories: {sorted(repos)}"
    for _, _, path in binder + colab:
        assert (ROOT / path).is_file(), f"a README launch link opens {path}, which is not in the repository"
    released = {f"course/{d.name}/{d.name}.ipynb" for d in (ROOT / "course").iterdir() if (d / f"{d.name}.ipynb").exists()}
    missing = released - {p for _, _, p in colab}
    assert not missing, f"README's Binder / Colab section has no Open in Colab link for {sorted(missing)}"
    assert "%pip install" in readme and "gmlib" in readme, "README's Colab path lacks its install cell"
