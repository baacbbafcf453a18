"""Shared set-up of the autograder tests: the lessons to check, the grading environment, the CLI.

Every test that takes a `lesson` runs on the fixture lesson (tests/fixtures/minicourse) and on every lesson
of the repository's solutions/ (found at collection time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.course import generate_release, list_lessons, source_notebooks
from autograder.settings import RELEASE_DIR, SOURCE_DIR

REPO = Path(__file__).resolve().parents[2]
FIXTURE_ROOT = REPO / "tests" / "fixtures" / "minicourse"
CLI_TIMEOUT = 1800  # seconds for one CLI call (a real lesson's batch executes several notebooks)


@dataclass(frozen=True)
class Lesson:
    """A lesson of a course root: solutions/<name>/ (nbgrader source) and course/<name>/ (released)."""

    root: Path
    name: str

    @property
    def is_fixture(self) -> bool:
        return self.root == FIXTURE_ROOT

    @property
    def source_dir(self) -> Path:
        return self.root / SOURCE_DIR / self.name

    @property
    def release_dir(self) -> Path:
        return self.root / RELEASE_DIR / self.name

    @property
    def notebooks(self) -> list[Path]:
        return source_notebooks(self.source_dir)


LESSONS = [Lesson(FIXTURE_ROOT, name) for name in list_lessons(FIXTURE_ROOT / SOURCE_DIR)]
LESSONS += [Lesson(REPO, name) for name in list_lessons(REPO / SOURCE_DIR)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`lesson`: the fixture lesson and every lesson of the repository; `repo_lesson`: the latter only."""
    for name, lessons in (("lesson", LESSONS), ("repo_lesson", [x for x in LESSONS if not x.is_fixture])):
        if name in metafunc.fixturenames:
            ids = [("fixture-" if x.is_fixture else "") + x.name for x in lessons]
            metafunc.parametrize(name, lessons, ids=ids, scope="module")


@pytest.fixture(scope="session")
def fixture_lesson() -> Lesson:
    """The fixture lesson alone, for properties of the pipeline rather than of a lesson."""
    return Lesson(FIXTURE_ROOT, "99_demo")


@pytest.fixture(scope="session")
def grading_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a grading run: FAST lessons, a private checkpoint cache, this checkout importable."""
    env = dict(os.environ)
    env["GMLIB_FAST"] = "1"
    env["GMLIB_CACHE"] = str(tmp_path_factory.mktemp("gmlib-cache"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    # kernels share the test run's cores with the other workers: one thread each (several spinning threads per
    # kernel on a busy machine made nbgrader's Validator runs 4-5x slower)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="session")
def cli(grading_env):
    """Run `python -m autograder ARGS...` in a subprocess; returns the CompletedProcess (text)."""

    def run(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "autograder", *map(str, args)],
            env=grading_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )

    return run


@pytest.fixture
def fast_kernel_env(monkeypatch: pytest.MonkeyPatch, grading_env: dict[str, str]) -> None:
    """Kernels started by this process (nbgrader's Validator) get the grading environment."""
    for name in ("GMLIB_FAST", "GMLIB_CACHE", "PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, grading_env[name])


@pytest.fixture(scope="module")
def released(lesson: Lesson, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lesson's student notebooks folder: the committed course/<lesson>/, or generated if there is none."""
    if lesson.release_dir.is_dir():
        return lesson.release_dir
    return generate_release(lesson.root / SOURCE_DIR, lesson.name, tmp_path_factory.mktemp("release") / lesson.name)


def with_answers(nb, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of notebook `nb` whose cells with the given nbgrader grade ids get the given sources."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb
