"""The one place the nbgrader configuration of this course is built.

`autograder/nbgrader_config.py` (plain `nbgrader ...` commands) and the `gm-grade` CLI both call
`nbgrader_config`, so a course root is configured the same way whichever tool drives nbgrader.
"""

from __future__ import annotations

from pathlib import Path

from nbgrader.converters import Autograde
from nbgrader.converters.generate_feedback import GenerateFeedback
from nbgrader.preprocessors import ClearHiddenTests, Execute
from traitlets.config import Config

from .execute import GradingExecute
from .expectations import CheckExpectations
from .feedback import HideHiddenTestTracebacks, RedactHiddenTests

__all__ = ["nbgrader_config", "SOURCE_DIR", "RELEASE_DIR", "STATE_DIR", "CELL_TIMEOUT", "KERNEL_ENV", "COURSE_ID"]

SOURCE_DIR = "solutions"  # the repository's nbgrader source folder (notebooks with solutions + hidden tests)
RELEASE_DIR = "course"  # the repository's student notebooks, generated from SOURCE_DIR
STATE_DIR = "autograder"  # submitted/, autograded/, feedback/ and gradebook.db of plain nbgrader commands

CELL_TIMEOUT = 60  # seconds a single cell may run while grading
NOTEBOOK_TIMEOUT = 900  # seconds a whole notebook may run while grading
KERNEL_STARTUP_TIMEOUT = 120  # seconds for a kernel to start (a cold torch import can take a while)
COURSE_ID = "default_course"  # the course of every gradebook row (nbgrader.api.Gradebook's default)
KERNEL_ENV = {"GMLIB_FAST": "1"}  # grading never depends on training: lessons train a few steps only


def nbgrader_config(
    root: str | Path,
    *,
    source_directory: str = "source",
    release_directory: str = "release",
    state_directory: str = ".",
    timeout: int = CELL_TIMEOUT,
    kernel_env: dict[str, str] | None = None,
    sandbox: bool = True,
    limits: dict[str, int] | None = None,
    notebook_timeout: int = NOTEBOOK_TIMEOUT,
    db_url: str | None = None,
    expectations_file: str = "",
) -> Config:
    """nbgrader configuration of a course root.

    root: the course root; the other folders are relative to it. With the defaults this is a plain nbgrader
    course (source/, release/, submitted/, autograded/, feedback/, gradebook.db), as used by the CLI's
    temporary and work roots; the repository itself uses solutions/, course/ and autograder/.
    timeout: seconds per cell while autograding (the cell is interrupted and fails, the rest still runs).
    kernel_env: variables added to the grading kernel's environment (default KERNEL_ENV).
    sandbox: run students' kernels in autograder.sandbox (False only with --unsafe).
    limits: autograder.sandbox.Limits fields to override (memory_mb, pids, cpu_s, ...).
    notebook_timeout: wall-clock seconds for one notebook.
    db_url: the gradebook (any SQLAlchemy URL); default ROOT/STATE/gradebook.db (SQLite).
    expectations_file: values recorded from the solution for hidden tests that use autograder.expect.
    """
    root = Path(root).resolve()
    state = Path(state_directory)
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.source_directory = source_directory
    c.CourseDirectory.release_directory = release_directory
    c.CourseDirectory.submitted_directory = str(state / "submitted")
    c.CourseDirectory.autograded_directory = str(state / "autograded")
    c.CourseDirectory.feedback_directory = str(state / "feedback")
    c.CourseDirectory.db_url = db_url or "sqlite:///" + str((root / state / "gradebook.db").resolve())
    # nbgrader's converters default to course "" and never create that course row: SQLite does not mind,
    # a PostgreSQL gradebook refuses the assignment (foreign key). Use the course `Gradebook(url)` opens.
    c.CourseDirectory.course_id = COURSE_ID

    c.Execute.timeout = int(timeout)
    c.Execute.startup_timeout = KERNEL_STARTUP_TIMEOUT
    c.GradingExecute.kernel_env = dict(KERNEL_ENV if kernel_env is None else kernel_env)
    c.GradingExecute.sandbox = bool(sandbox)
    c.GradingExecute.limits = dict(limits or {})
    c.GradingExecute.notebook_timeout = int(notebook_timeout)
    # Autograde runs the student's notebook through GradingExecute instead of nbgrader's Execute.
    # then CheckExpectations compares the values hidden tests exported with the solution's, outside the kernel.
    autograde = []
    for pp in Autograde.autograde_preprocessors.default():
        autograde += [GradingExecute, CheckExpectations] if pp is Execute else [pp]
    c.Autograde.autograde_preprocessors = autograde
    c.CheckExpectations.expectations_file = str(expectations_file)
    # nbgrader's feedback shows the autograded notebook, where the hidden tests were put back: hide them,
    # the traceback lines that would quote them, and any output of the student's code that quotes them.
    feedback = list(GenerateFeedback.preprocessors.default())
    hide = [HideHiddenTestTracebacks, RedactHiddenTests, ClearHiddenTests]
    c.GenerateFeedback.preprocessors = feedback[:1] + hide + feedback[1:]
    return c
