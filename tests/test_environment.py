"""The environment descriptions agree: pyproject (pip), environment.yml (conda), binder/, and the lock file."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    return {canonicalize_name(r.name): str(r.specifier) for r in reqs}


def conda_pip_requirements(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, f"{path}: expected one pip: section"
    reqs = [Requirement(line) for line in pip_lists[0] if not line.startswith("-")]
    return {canonicalize_name(r.name): str(r.specifier) for r in reqs}


@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml"])
def test_conda_environments_name_the_same_packages_and_ranges_as_pyproject(path):
    """Does each conda environment list exactly pyproject's packages (runtime + dev) with the same ranges?"""
    assert conda_pip_requirements(ROOT / path) == pyproject_requirements()


def test_binder_uses_cpu_torch_and_installs_gmlib_in_student_mode():
    """Does Binder pull CPU torch, install gmlib itself and switch nbgrader's instructor tools off?"""
    env = (ROOT / "binder/environment.yml").read_text()
    assert "download.pytorch.org/whl/cpu" in env
    post = (ROOT / "binder/postBuild").read_text()
    assert "pip install" in post and "-e ." in post and "student-mode.sh" in post
    mode = (ROOT / "binder/student-mode.sh").read_text()
    instructor_tools = ["nbgrader.server_extensions.formgrader", "@jupyter/nbgrader:formgrader",
                        "@jupyter/nbgrader:create-assignment"]
    for ext in instructor_tools:
        assert ext in mode


def test_lock_file_pins_every_requirement_within_its_range():
    """Does requirements/constraints.txt pin each pyproject requirement to a version its range allows?"""
    pins = {}
    for line in (ROOT / "requirements/constraints.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    for name, spec in pyproject_requirements().items():
        assert name in pins, f"{name} is not pinned in requirements/constraints.txt (run make lock)"
        req = Requirement(f"{name}{spec}")
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {spec}"


def test_ci_runs_the_readme_test_command():
    """Does .ci/run call `make test`, the command the README gives?"""
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert "make test" in (ROOT / "README.md").read_text() and "make lab" in (ROOT / "README.md").read_text()
