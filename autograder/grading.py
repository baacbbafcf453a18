"""Grade a batch of submissions of one lesson: the coordinator (trusted; the only writer of shared state).

Work folder (an nbgrader course root): source/LESSON, release/LESSON, submitted/<student>/LESSON (as handed
in), autograded/, feedback/, the gradebook (SQLite gradebook.db, or any SQLAlchemy URL), plus this module's
logs/LESSON/<student>.log, grades/LESSON.csv, expectations/LESSON.json and history.jsonl.

Each submission becomes a `worker.Task`, graded in its own throw-away course root by `worker.grade_task`,
here, in a local process pool (`jobs`) or on a Dask cluster (`dask`). Outcomes come back as plain data and
are committed one at a time: files, gradebook, then one line appended to history.jsonl (never rewritten).
Re-running a batch is idempotent: a submission whose bytes, lesson and settings are unchanged since its last
history line keeps that grade without running again (`force` regrades). When a grade does change, the old
one stays in the history and the change is reported, never silently overwritten.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils as nbutils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI

from .course import source_notebooks
from .engine import IGNORE, check, open_api
from .expectations import record, uses_expect
from .settings import nbgrader_config
from .submissions import Submission, find_submissions, open_submissions
from .worker import Outcome, Task, grade_task

__all__ = ["Result", "grade_lesson", "grade_columns", "prepare_workdir", "read_history", "HISTORY"]

HISTORY = "history.jsonl"


@dataclass
class Result:
    """The outcome for one student: status "ok" (graded) or "failed" (with a reason; scores 0)."""

    student: str
    status: str
    score: float = 0.0
    max_score: float = 0.0
    cells: dict[str, float] = field(default_factory=dict)  # grade cell column -> score
    reason: str = ""
    action: str = "graded"  # graded, unchanged (kept from history), changed (differs from the last grade)


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


def _template(workdir: Path, lesson: str) -> dict[str, bytes]:
    """Files of a private course root where the lesson is generated and registered (SQLite)."""
    with tempfile.TemporaryDirectory(prefix="gm-template-") as tmp:
        root = Path(tmp)
        shutil.copytree(workdir / "source" / lesson, root / "source" / lesson)
        check(open_api(root).generate_assignment(lesson, force=True, create=True), f"generate_assignment {lesson}")
        files = [p for p in root.rglob("*") if p.is_file()]
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def _expectations(workdir: Path, lesson: str, settings: dict, source_key: str) -> dict:
    """Values the solution exports for hidden tests (autograder.expect), recorded once per source version."""
    cache = workdir / "expectations" / f"{lesson}.json"
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("source") == source_key:
            return saved["notebooks"]
    found = {}
    for path in source_notebooks(workdir / "source" / lesson):
        if uses_expect(nbformat.read(path, as_version=4)):
            config = nbgrader_config(workdir, **{k: v for k, v in settings.items() if k != "db_url"})
            found[path.stem] = record(path, config)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"source": source_key, "notebooks": found}))
    return found


def read_history(workdir: Path) -> list[dict]:
    """Every line of the work folder's history (oldest first); a damaged line is skipped."""
    path = workdir / HISTORY
    lines = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def _append_history(workdir: Path, entry: dict) -> None:
    with (workdir / HISTORY).open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def grade_lesson(
    source_root: Path,
    lesson: str,
    submissions: Path,
    workdir: Path,
    *,
    timeout: int | None = None,
    sandbox: bool = True,
    limits: dict | None = None,
    notebook_timeout: int | None = None,
    db_url: str | None = None,
    jobs: int = 1,
    dask: str | None = None,
    force: bool = False,
    progress: Callable[[str], None] = lambda message: None,
) -> list[Result]:
    """Autograde every submission of `lesson` in `submissions` (folder or .zip); one Result per submission."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {"sandbox": sandbox, "limits": dict(limits or {})}
    settings |= {} if timeout is None else {"timeout": timeout}
    settings |= {} if notebook_timeout is None else {"notebook_timeout": notebook_timeout}
    api = prepare_workdir(source_root, lesson, workdir, db_url=db_url, **settings)
    db_url = api.coursedir.db_url
    names = [p.stem for p in source_notebooks(workdir / "source" / lesson)]
    columns = grade_columns(workdir, lesson)
    template = _template(workdir, lesson)
    source_key = _digest(*(template[k] for k in sorted(template) if k.startswith("source/")))
    settings_key = _digest(json.dumps(settings, sort_keys=True))
    expectations = _expectations(workdir, lesson, settings, source_key)
    last = {(h["lesson"], h["student"]): h for h in read_history(workdir) if "student" in h}

    results: list[Result] = []
    tasks: list[tuple[Task, str]] = []
    with open_submissions(submissions) as (folder, label):
        for sub in find_submissions(folder, lesson, names, label):
            if sub.error or not sub.student:
                results.append(_commit_failed(workdir, db_url, lesson, sub, columns, last))
                continue
            data = {name: path.read_bytes() for name, path in sub.notebooks.items()}
            key = _digest(source_key, settings_key, *(f"{n}:{_digest(d)}" for n, d in sorted(data.items())))
            prev = last.get((lesson, sub.student))
            if not force and prev and prev.get("key") == key and _still_recorded(db_url, lesson, prev):
                progress(f"{sub.student}: unchanged since {prev['time']}, grade kept")
                results.append(_result_of(prev, columns, action="unchanged"))
                continue
            task = Task(lesson, sub.student, sub.folder, data, template, settings, expectations)
            tasks.append((task, key))
        for task, key, outcome in _run(tasks, jobs, dask, progress):
            results.append(_commit(workdir, db_url, lesson, task, key, outcome, columns, last, progress))
    return sorted(results, key=lambda r: r.student)


def _run(tasks: list[tuple[Task, str]], jobs: int, dask: str | None, progress) -> Iterator[tuple[Task, str, Outcome]]:
    """Outcomes of the tasks, in the order they finish, from the chosen engine."""
    if not tasks:
        return
    if dask:
        from .distributed import run_on_dask

        yield from run_on_dask(tasks, dask, progress)
        return
    jobs = max(1, min(jobs, len(tasks)))
    if jobs == 1:
        for task, key in tasks:
            progress(f"grading {task.student} ...")
            yield task, key, grade_task(task)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    progress(f"grading {len(tasks)} submission(s) in {jobs} processes ...")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(grade_task, task): (task, key) for task, key in tasks}
        for future in as_completed(futures):
            task, key = futures[future]
            try:
                outcome = future.result()
            except Exception as err:  # a worker process lost: this submission only
                outcome = Outcome(task.student, "failed", reason=f"{task.folder}: worker failed: {err}")
            yield task, key, outcome


def _still_recorded(db_url: str, lesson: str, prev: dict) -> bool:
    """Does the gradebook still hold the grade the history line recorded (or no submission for a failure)?"""
    with Gradebook(db_url) as gb:
        try:
            sub = gb.find_submission(lesson, prev["student"])
        except MissingEntry:
            return prev["status"] != "ok"
        return prev["status"] == "ok" and abs(float(sub.score) - prev["score"]) < 1e-9


def _result_of(entry: dict, columns: dict, action: str) -> Result:
    cells = {c: float(entry.get("cells", {}).get(c, 0.0)) for c in columns}
    return Result(entry["student"], entry["status"], entry["score"], entry["max_score"], cells, entry["reason"], action)


def _notes(outcome: Outcome) -> str:
    parts = [f"repaired: {r}" for r in outcome.repairs]
    parts += [f"cell {e['cell']}: {e['event']}: {e['reason']}" for e in outcome.events]
    return "; ".join(parts)


def _commit(workdir, db_url, lesson, task: Task, key, outcome: Outcome, columns, last, progress) -> Result:
    """Write one outcome: submitted and autograded files, log, gradebook, then its history line."""
    student = task.student
    log_file = workdir / "logs" / lesson / f"{student}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(outcome.log, encoding="utf-8")
    for folder in ("submitted", "autograded", "feedback"):
        shutil.rmtree(workdir / folder / student / lesson, ignore_errors=True)
    sub_dir = workdir / "submitted" / student / lesson
    sub_dir.mkdir(parents=True)
    for name, data in task.notebooks.items():
        (sub_dir / f"{name}.ipynb").write_bytes(data)
    several = len(columns) and any(":" in c for c in columns)
    cells = dict.fromkeys(columns, 0.0)
    with Gradebook(db_url) as gb:
        gb.update_or_create_student(student)
        try:
            gb.remove_submission(lesson, student)
        except MissingEntry:
            pass
        if outcome.status == "ok":
            for name, data in outcome.autograded.items():
                out = workdir / "autograded" / student / lesson / f"{name}.ipynb"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
            submission = gb.add_submission(lesson, student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    score = outcome.scores.get(notebook.name, {}).get(grade.name)
                    grade.auto_score = score
                    cells[f"{notebook.name}:{grade.name}" if several else grade.name] = float(score or 0.0)
            gb.db.commit()
            score, max_score = float(submission.score), float(submission.max_score)
        else:
            score, max_score = 0.0, sum(columns.values())
    reason = outcome.reason if outcome.status != "ok" else _notes(outcome)
    if outcome.status != "ok" and outcome.reason:
        reason = outcome.reason + (f" ({_notes(outcome)})" if _notes(outcome) else "")
    result = Result(student, outcome.status, score, max_score, cells, reason)
    prev = last.get((lesson, student))
    if prev and (prev["score"], prev["status"]) != (score, outcome.status):
        result.action = "changed"
        progress(f"{student}: grade changed from {prev['score']:g} ({prev['status']}) to {score:g} ({outcome.status}); "
                 f"the old grade stays in {workdir / HISTORY}")
    _history(workdir, lesson, result, key, outcome.seconds, prev)
    return result


def _commit_failed(workdir, db_url, lesson, sub: Submission, columns, last) -> Result:
    """A submission that could not even be read (bad layout, unusable id): 0, with the reason."""
    result = Result(sub.student or sub.folder, "failed", 0.0, sum(columns.values()), dict.fromkeys(columns, 0.0), sub.error)
    if sub.student:
        with Gradebook(db_url) as gb:
            gb.update_or_create_student(sub.student)
            try:
                gb.remove_submission(lesson, sub.student)
            except MissingEntry:
                pass
        prev = last.get((lesson, sub.student))
        result.action = "changed" if prev and (prev["score"], prev["status"]) != (0.0, "failed") else "graded"
        _history(workdir, lesson, result, "", 0.0, prev)
    return result


def _history(workdir: Path, lesson: str, result: Result, key: str, seconds: float, prev: dict | None) -> None:
    entry = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "lesson": lesson,
        "student": result.student,
        "key": key,
        "status": result.status,
        "score": result.score,
        "max_score": result.max_score,
        "cells": result.cells,
        "reason": result.reason,
        "action": result.action,
        "seconds": round(seconds, 2),
        "previous": None if prev is None else {k: prev[k] for k in ("time", "score", "status")},
    }
    _append_history(workdir, entry)
