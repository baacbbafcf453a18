"""The nbgrader configuration: one function, used by nbgrader_config.py and the CLI alike."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook
from nbgrader.preprocessors import ClearHiddenTests, Execute
from traitlets.config.loader import PyFileConfigLoader

from autograder.course import generate_release
from autograder.execute import GradingExecute
from autograder.feedback import HideHiddenTestTracebacks
from autograder.settings import nbgrader_config

REPO = Path(__file__).resolve().parents[2]
FIXTURE_ROOT = REPO / "tests" / "fixtures" / "minicourse"


def _load_config_file(folder: Path):
    return PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()


def test_config_file_points_at_the_repository():
    """Does autograder/nbgrader_config.py give nbgrader the repository's folders and gradebook?"""
    c = _load_config_file(REPO / "autograder")
    assert c.CourseDirectory.root == str(REPO)
    assert c.CourseDirectory.source_directory == "solutions"
    assert c.CourseDirectory.release_directory == "course"
    assert c.CourseDirectory.submitted_directory == "autograder/submitted"
    assert c.CourseDirectory.autograded_directory == "autograder/autograded"
    assert c.CourseDirectory.feedback_directory == "autograder/feedback"
    assert c.CourseDirectory.db_url == f"sqlite:///{REPO}/autograder/gradebook.db"


def test_config_file_is_the_settings_function():
    """Is nbgrader_config.py exactly settings.nbgrader_config for the repository (no config of its own)?"""
    expected = nbgrader_config(REPO, source_directory="solutions", release_directory="course", state_directory="autograder")
    assert _load_config_file(REPO / "autograder") == expected


def test_grading_runs_with_timeouts_fast_mode_and_without_hidden_tests_in_feedback():
    """Are timeouts set, the grading kernel in FAST mode, and hidden tests cleared from feedback?"""
    c = nbgrader_config("/tmp/course", timeout=7)
    assert c.Execute.timeout == 7 and c.Execute.startup_timeout >= 60
    assert c.GradingExecute.kernel_env == {"GMLIB_FAST": "1"}
    assert GradingExecute in c.Autograde.autograde_preprocessors
    assert Execute not in c.Autograde.autograde_preprocessors
    feedback = c.GenerateFeedback.preprocessors
    assert feedback.index(HideHiddenTestTracebacks) < feedback.index(ClearHiddenTests)


@pytest.mark.slow
def test_plain_nbgrader_commands_use_the_config(tmp_path: Path, grading_env: dict[str, str]):
    """Do `nbgrader generate_assignment` (run from autograder/) and `nbgrader autograde` (with
    JUPYTER_CONFIG_PATH) work on a checkout laid out like the repository?"""
    shutil.copytree(REPO / "autograder", tmp_path / "autograder", ignore=shutil.ignore_patterns("__pycache__", "work"))
    shutil.copytree(FIXTURE_ROOT / "solutions", tmp_path / "solutions")
    env = dict(grading_env, PATH=str(Path(sys.executable).parent) + os.pathsep + grading_env["PATH"])
    env["PYTHONPATH"] = ""  # the copy's nbgrader_config.py must find the copy's autograder package itself
    nbgrader = str(Path(sys.executable).parent / "nbgrader")

    done = subprocess.run(
        [nbgrader, "generate_assignment", "99_demo", "--force"],
        cwd=tmp_path / "autograder",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    expected = generate_release(FIXTURE_ROOT / "solutions", "99_demo", tmp_path / "expected")
    assert (tmp_path / "course/99_demo/99_demo.ipynb").read_bytes() == (expected / "99_demo.ipynb").read_bytes()

    submitted = tmp_path / "autograder/submitted/alice/99_demo"
    submitted.mkdir(parents=True)
    solution = json.loads((FIXTURE_ROOT / "solutions/99_demo/99_demo.ipynb").read_text())
    (submitted / "99_demo.ipynb").write_text(json.dumps(solution))
    env["JUPYTER_CONFIG_PATH"] = str(tmp_path / "autograder")
    done = subprocess.run(
        [nbgrader, "autograde", "99_demo", "--force"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    with Gradebook(f"sqlite:///{tmp_path}/autograder/gradebook.db") as gb:
        assert gb.find_submission("99_demo", "alice").score == 5
