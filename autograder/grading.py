"""Grade a batch of submissions of one lesson in a work folder that is a full nbgrader course root.

Work folder layout (nbgrader's defaults): source/LESSON (copied from the course), release/LESSON,
submitted/<student>/LESSON, autograded/, feedback/, gradebook.db, plus logs/LESSON/<student>.log and
grades/LESSON.csv (this module's). One student at a time, through nbgrader's Python API; a submission that
cannot be graded is recorded as failed with a reason and scores 0, and the others are still graded.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI

from .course import source_notebooks
from .engine import IGNORE, NbGraderError, check, open_api
from .submissions import Submission, find_submissions, notebook_problem, open_submissions

__all__ = ["Result", "grade_lesson", "grade_columns", "prepare_workdir"]


@dataclass
class Result:
    """The outcome for one student: status "ok" (graded) or "failed" (with a reason; scores 0)."""

    student: str
    status: str
    score: float = 0.0
    max_score: float = 0.0
    cells: dict[str, float] = field(default_factory=dict)  # grade cell column -> score
    reason: str = ""


def prepare_workdir(source_root: Path, lesson: str, workdir: Path, **config) -> NbGraderAPI:
    """Copy the lesson's source into `workdir`, generate it there (registers it in the gradebook)."""
    source = workdir / "source" / lesson
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(source_root / lesson, source, ignore=shutil.ignore_patterns(*IGNORE))
    api = open_api(workdir, **config)
    check(api.generate_assignment(lesson, force=True, create=True), f"nbgrader generate_assignment {lesson}")
    return api


def grade_columns(workdir: Path, lesson: str) -> dict[str, float]:
    """Grade cells of the lesson in notebook order: column name -> points (`nb:grade_id` if several nbs)."""
    notebooks = source_notebooks(workdir / "source" / lesson)
    columns = {}
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            if nbutils.is_grade(cell):
                name = cell.metadata.nbgrader["grade_id"]
                column = f"{path.stem}:{name}" if len(notebooks) > 1 else name
                columns[column] = float(cell.metadata.nbgrader.get("points", 0))
    return columns


def grade_lesson(
    source_root: Path,
    lesson: str,
    submissions: Path,
    workdir: Path,
    *,
    timeout: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> list[Result]:
    """Autograde every submission of `lesson` in `submissions` (folder or .zip); one Result per submission."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {} if timeout is None else {"timeout": timeout}
    api = prepare_workdir(source_root, lesson, workdir, **config)
    names = [p.stem for p in source_notebooks(workdir / "source" / lesson)]
    columns = grade_columns(workdir, lesson)
    with open_submissions(submissions) as (folder, label):
        batch = find_submissions(folder, lesson, names, label)
        results = []
        for sub in batch:
            progress(f"grading {sub.student or sub.folder} ...")
            try:
                results.append(_grade_one(api, workdir, lesson, sub, columns))
            except Exception as err:  # one broken submission must not cost the others their grades
                reason = f"{sub.folder}: could not be graded: {type(err).__name__}: {err}"
                results.append(_failed(sub.student or sub.folder, columns, reason))
    return results


def _failed(student: str, columns: dict[str, float], reason: str) -> Result:
    return Result(student, "failed", 0.0, sum(columns.values()), dict.fromkeys(columns, 0.0), reason)


def _grade_one(api: NbGraderAPI, workdir: Path, lesson: str, sub: Submission, columns: dict) -> Result:
    db_url = api.coursedir.db_url
    problem = sub.error or next(
        (p for name, path in sub.notebooks.items() if (p := notebook_problem(path, f"{sub.folder}/{path.name}"))), ""
    )
    if sub.student:
        _forget(workdir, db_url, lesson, sub.student)
    if problem:
        if sub.student:  # so that exports list the student (with no submission)
            with Gradebook(db_url) as gb:
                gb.update_or_create_student(sub.student)
        return _failed(sub.student or sub.folder, columns, problem)

    target = workdir / "submitted" / sub.student / lesson
    target.mkdir(parents=True)
    for name, path in sub.notebooks.items():
        shutil.copyfile(path, target / f"{name}.ipynb")
    result = api.autograde(lesson, sub.student, force=True, create=True)
    log_file = workdir / "logs" / lesson / f"{sub.student}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(result.get("log", "") + result.get("error", ""), encoding="utf-8")
    try:
        check(result, f"autograde of {sub.folder}")
    except NbGraderError:
        _forget(workdir, db_url, lesson, sub.student, keep_submitted=True)
        return _failed(
            sub.student, columns, f"{sub.folder}: nbgrader could not grade it: {_first_error(result)} (log: {log_file})"
        )
    return _scores(db_url, lesson, sub.student, columns)


def _scores(db_url: str, lesson: str, student: str, columns: dict) -> Result:
    cells = dict.fromkeys(columns, 0.0)
    manual = []
    with Gradebook(db_url) as gb:
        submission = gb.find_submission(lesson, student)
        several = len(submission.notebooks) > 1
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                column = f"{notebook.name}:{grade.name}" if several else grade.name
                cells[column] = float(grade.score)
                if grade.needs_manual_grade:
                    manual.append(column)
        score, max_score = float(submission.score), float(submission.max_score)
    reason = f"needs manual grading: {', '.join(manual)}" if manual else ""
    return Result(student, "ok", score, max_score, cells, reason)


def _forget(workdir: Path, db_url: str, lesson: str, student: str, keep_submitted: bool = False) -> None:
    """Remove what an earlier run left for this student and lesson (files and gradebook entry)."""
    folders = ["autograded", "feedback"] + ([] if keep_submitted else ["submitted"])
    for folder in folders:
        shutil.rmtree(workdir / folder / student / lesson, ignore_errors=True)
    with Gradebook(db_url) as gb:
        try:
            gb.remove_submission(lesson, student)
        except MissingEntry:
            pass


def _first_error(result: dict) -> str:
    lines = [line[len("[ERROR] ") :] for line in result.get("log", "").splitlines() if line.startswith("[ERROR]")]
    return lines[0] if lines else (result.get("error", "").strip().splitlines() or ["unknown error"])[-1]
