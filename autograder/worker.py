"""Grade ONE submission in a private, throw-away nbgrader course root: the unit of work of every engine.

`grade_task(task)` needs only what the task carries (bytes of the lesson's generated course root and of the
submission, the settings), so it runs the same in this process, in a local process pool, or on a Dask worker
on another machine with this package installed. It returns an `Outcome` of plain data; the coordinator
(autograder.grading) alone writes the shared gradebook, the files and the history, so workers never contend.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from .engine import open_api
from .repair import Unrepairable, read_submission, repair

__all__ = ["Task", "Outcome", "grade_task"]

NO_KERNEL = "the grading kernel could not be started"


@dataclass
class Task:
    lesson: str
    student: str
    folder: str  # how the submission is named in messages
    notebooks: dict[str, bytes]  # lesson notebook name (no .ipynb) -> submitted bytes
    template: dict[str, bytes]  # course root files: source/, release/, gradebook.db (assignment registered)
    settings: dict  # keywords of settings.nbgrader_config (timeout, sandbox, limits, ...)
    expectations: dict = field(default_factory=dict)  # notebook name -> grade_id -> solution records


@dataclass
class Outcome:
    student: str
    status: str = "failed"  # "ok" or "failed"
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # notebook -> grade_id -> score
    reason: str = ""
    repairs: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    autograded: dict[str, bytes] = field(default_factory=dict)  # notebook name -> autograded notebook
    log: str = ""
    seconds: float = 0.0


def grade_task(task: Task) -> Outcome:
    """Repair, execute (sandboxed) and score one submission; never raises for a bad submission."""
    start = time.monotonic()
    try:
        out = _grade(task)
    except Exception as err:  # an engine failure for this submission only
        out = Outcome(task.student, "failed", reason=f"{task.folder}: could not be graded: {type(err).__name__}: {err}")
    out.seconds = time.monotonic() - start
    return out


def _grade(task: Task) -> Outcome:
    out = Outcome(task.student)
    with tempfile.TemporaryDirectory(prefix="gm-grade-") as tmp:
        root = Path(tmp)
        for rel, data in task.template.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        target = root / "submitted" / task.student / task.lesson
        target.mkdir(parents=True)
        for name, data in task.notebooks.items():
            label = f"{task.folder}/{name}.ipynb"
            try:
                nb, notes = read_submission(data, label)
            except Unrepairable as err:
                return Outcome(task.student, "failed", reason=str(err))
            release = nbformat.read(root / "release" / task.lesson / f"{name}.ipynb", as_version=4)
            nb, more = repair(nb, release)
            out.repairs += [f"{name}: {note}" for note in notes + more]
            nbformat.write(nb, target / f"{name}.ipynb")
        settings = dict(task.settings)
        if task.expectations:
            exp_file = root / "expectations.json"
            merged = {gid: recs for per_nb in task.expectations.values() for gid, recs in per_nb.items()}
            exp_file.write_text(json.dumps(merged))
            settings["expectations_file"] = str(exp_file)
        api = open_api(root, **settings)
        result = api.autograde(task.lesson, task.student, force=True, create=True)
        out.log = result.get("log", "") + result.get("error", "")
        graded = root / "autograded" / task.student / task.lesson
        for name in task.notebooks:
            events_file = graded / f".{name}.grading.json"
            if events_file.is_file():
                out.events += [{"notebook": name, **e} for e in json.loads(events_file.read_text())]
            if (graded / f"{name}.ipynb").is_file():
                out.autograded[name] = (graded / f"{name}.ipynb").read_bytes()
        if not result["success"] or not out.autograded:
            out.status = "failed"
            out.reason = f"{task.folder}: nbgrader could not grade it: {_first_error(result)}"
            return out
        with Gradebook(api.coursedir.db_url) as gb:
            submission = gb.find_submission(task.lesson, task.student)
            for notebook in submission.notebooks:
                out.scores[notebook.name] = {g.name: float(g.score) for g in notebook.grades}
        stopped = [e["reason"] for e in out.events if e.get("event") == "stopped" and NO_KERNEL in e["reason"]]
        if stopped:  # the machine, not the student: say so instead of handing out a silent 0
            out.status, out.reason = "failed", f"{task.folder}: {stopped[0]}"
        else:
            out.status = "ok"
    return out


def _first_error(result: dict) -> str:
    lines = [line[len("[ERROR] ") :] for line in result.get("log", "").splitlines() if line.startswith("[ERROR]")]
    return lines[0] if lines else (result.get("error", "").strip().splitlines() or ["unknown error"])[-1]
