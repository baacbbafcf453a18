"""End to end through the real CLI: a batch of known submissions graded, then feedback and export.

The batch is built from the lesson itself: the released notebook with every answer filled in from the
solutions (full marks), blank but skipping every later cell from inside its kernel ("tampered": zero, which only
the hidden tests' values compared outside the kernel can give; the blank notebook as released is checked cell by
cell in test_released.py), with every answer but the first and the last (loses exactly their tests' points;
the fixture lesson stubs one exercise at a time),
and a file that is not JSON. Answer cells and their tests are paired by order: the graded test cells after an
answer cell, up to the next answer cell, test it.
"""

from __future__ import annotations

import csv
import html
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbgrader import utils as nbutils

from autograder.course import generate_release

from .conftest import with_answers

pytestmark = pytest.mark.slow

DAMAGED = '{"cells": [\n  {\n    oops\n'
# A student who answers nothing but stops the kernel from running any later cell (an input transformer turns
# each into `pass`): inside the kernel every graded cell then "passes", and nbgrader alone gives full marks.
# Only the hidden tests' values, compared outside the kernel (autograder.expect), can still fail them.
TAMPER = """def _skip(lines):
    return ["pass\\n"]


get_ipython().input_transformers_cleanup.append(_skip)
"""


@dataclass
class Exercise:
    answer_id: str  # grade_id of the answer cell
    solution: str  # its source in the solution notebook
    tests: dict[str, float]  # grade_id -> points of the graded test cells that check it


def exercises(source: nbformat.NotebookNode) -> list[Exercise]:
    """The autograded answer cells of a source notebook, each with the test cells that follow it."""
    found: list[Exercise] = []
    for cell in source.cells:
        if nbutils.is_solution(cell) and not nbutils.is_grade(cell):
            found.append(Exercise(cell.metadata.nbgrader["grade_id"], cell.source, {}))
        elif nbutils.is_grade(cell) and not nbutils.is_solution(cell) and found:
            found[-1].tests[cell.metadata.nbgrader["grade_id"]] = float(cell.metadata.nbgrader["points"])
    return found


def autograded_points(source: nbformat.NotebookNode) -> dict[str, float]:
    """grade_id -> points of every autograded test cell."""
    return {
        c.metadata.nbgrader["grade_id"]: float(c.metadata.nbgrader["points"])
        for c in source.cells
        if nbutils.is_grade(c) and not nbutils.is_solution(c)
    }


def answered(released: nbformat.NotebookNode, exercises: list[Exercise], skip=()) -> nbformat.NotebookNode:
    """The released notebook with every answer cell but those in `skip` (answer ids) given its solution."""
    return with_answers(released, {e.answer_id: e.solution for e in exercises if e.answer_id not in skip})


@dataclass
class Batch:
    lesson: object
    workdir: Path
    submissions: Path
    points: dict[str, float]  # grade_id -> points of the autograded test cells
    stubbed: dict[str, list[Exercise]]  # student -> the exercises left unanswered
    returncode: int
    stderr: str

    @property
    def csv(self) -> Path:
        return self.workdir / "grades" / f"{self.lesson.name}.csv"

    def rows(self) -> dict[str, dict[str, str]]:
        with self.csv.open() as f:
            return {row["student"]: row for row in csv.DictReader(f)}


def _write_batch(lesson, released_dir: Path, subs: Path) -> tuple[dict[str, float], dict[str, list[Exercise]]]:
    """Write the batch into `subs`; returns the autograded points and the stubbed students."""
    (source_path,) = lesson.notebooks  # lessons have one notebook each
    source = nbformat.read(source_path, as_version=4)
    released = nbformat.read(released_dir / source_path.name, as_version=4)
    found = exercises(source)
    assert found, f"{source_path} has no autograded answer cell"
    name = source_path.name
    if lesson.is_fixture:
        stubbed = {f"stub_{e.answer_id}": [e] for e in found}
    else:  # one notebook for both: a middle exercise's test that needs the first answer still shows up
        stubbed = {"stub_first_and_last": [found[0], found[-1]]}

    def put(student: str, nb_or_text, filename: str = name) -> None:
        path = subs / student / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(nb_or_text, str):
            path.write_text(nb_or_text)
        else:
            nbformat.write(nb_or_text, path)

    put("solution", answered(released, found))
    for student, stubs in stubbed.items():
        put(student, answered(released, found, skip={e.answer_id for e in stubs}))
    put("damaged", DAMAGED)
    if lesson.is_fixture:  # its hidden tests decide inside the kernel; the lessons' must not (see tampered)
        put("untouched", released)
    else:
        tampered = nbformat.from_dict(released)
        first = next(c for c in tampered.cells if nbutils.is_solution(c) and not nbutils.is_grade(c))
        first.source = TAMPER + "\n" + first.source
        put("tampered", tampered)
    if lesson.is_fixture:  # the other layouts, an unusable id, a wrong answer the hidden tests catch
        put("nested", answered(released, found), f"{lesson.name}/{name}")
        put("renamed", answered(released, found), "my work.ipynb")
        put("@@@", released)
        wrong = answered(released, found)
        for cell in wrong.cells:
            cell.source = cell.source.replace("return a + b", "return a + b if a > 0 else 1")
        put("hidden_fail", wrong)
    return autograded_points(source), stubbed


def test_known_submissions_are_graded_as_expected(lesson, released: Path, tmp_path: Path, cli):
    """Does a batch of known submissions, graded together through the CLI, get the scores it should, with
    feedback free of hidden tests and an export listing every student?"""
    subs, workdir = tmp_path / "submissions", tmp_path / "work"
    points, stubbed = _write_batch(lesson, released, subs)
    done = cli("--root", lesson.root, "grade", lesson.name, subs, "--workdir", workdir)
    batch = Batch(lesson, workdir, subs, points, stubbed, done.returncode, done.stderr)
    assert batch.csv.is_file(), done.stderr

    problems = full_marks(batch) + zero(batch) + one_unanswered(batch) + damaged(batch) + tampered(batch)
    if lesson.is_fixture:
        problems += fixture_cases(batch) + regrading(batch, cli)
    problems += feedback(batch, cli, released) + export(batch, cli)
    assert problems == [], "\n".join(problems)


def full_marks(batch: Batch) -> list[str]:
    """Does the released notebook with the solutions filled in score every autograded point?"""
    row = batch.rows()["solution"]
    scores = {g: float(row[g]) for g in batch.points}
    if row["status"] != "ok" or scores != batch.points or float(row["score"]) != sum(batch.points.values()):
        return [f"the solution does not score full marks: {row}"]
    return []


def zero(batch: Batch) -> list[str]:
    """Does an untouched student notebook score zero?"""
    row = batch.rows().get("untouched")
    if row is None:
        return []
    return [] if row["status"] == "ok" and float(row["score"]) == 0 else [f"untouched does not score 0: {row}"]


def tampered(batch: Batch) -> list[str]:
    """Does a blank notebook that skips every later cell inside its kernel (see TAMPER) still score zero?"""
    row = batch.rows().get("tampered")
    if row is None:
        return []
    if row["status"] != "ok" or float(row["score"]) != 0:
        passed = sorted(g for g in batch.points if float(row[g]) > 0)
        return [f"tampered scores {row['score']} (status {row['status']}); graded cells passed: {passed}"]
    return []


def one_unanswered(batch: Batch) -> list[str]:
    """Does leaving answers as the stubs lose exactly the points of those exercises' tests?"""
    problems = []
    for student, stubs in batch.stubbed.items():
        row = batch.rows()[student]
        lost = {g for e in stubs for g in e.tests}
        expected = {g: 0.0 if g in lost else p for g, p in batch.points.items()}
        got = {g: float(row[g]) for g in batch.points}
        if row["status"] != "ok" or got != expected or float(row["score"]) != sum(expected.values()):
            problems.append(f"{student}: expected {expected} (total {sum(expected.values())}), got {row}")
    return problems


def damaged(batch: Batch) -> list[str]:
    """Is a file that is not JSON named with a plain reason, the exit status 1, and the rest still graded?"""
    rows = batch.rows()
    path = f"{batch.submissions}/damaged/{batch.lesson.notebooks[0].name}"
    problems = []
    if rows["damaged"]["status"] != "failed" or float(rows["damaged"]["score"]) != 0:
        problems.append(f"damaged is not a failure scoring 0: {rows['damaged']}")
    if not rows["damaged"]["reason"].startswith(f"{path}: not valid JSON (line 3, column 5)"):
        problems.append(f"damaged: unclear reason {rows['damaged']['reason']!r}")
    if batch.returncode != 1 or path not in batch.stderr:
        problems.append(f"grade exited {batch.returncode} without naming {path}: {batch.stderr[-2000:]}")
    expected = {"solution", "untouched" if batch.lesson.is_fixture else "tampered", *batch.stubbed}
    not_graded = expected - {s for s, r in rows.items() if r["status"] == "ok"}
    return problems + ([f"not graded: {sorted(not_graded)}"] if not_graded else [])


def fixture_cases(batch: Batch) -> list[str]:
    """Are nested and renamed notebooks graded, an unusable id reported, and a hidden test counted?"""
    rows = batch.rows()
    unusable = rows.get(f"{batch.submissions}/@@@", {})
    got = {
        "nested": rows["nested"]["score"],
        "renamed": rows["renamed"]["score"],
        "hidden_fail": (rows["hidden_fail"]["test_demo_add"], rows["hidden_fail"]["score"]),
        "@@@": "unusable student id '@@@'" in unusable.get("reason", ""),
    }
    expected = {"nested": "5", "renamed": "5", "hidden_fail": ("0", "3"), "@@@": True}
    return [] if got == expected else [f"fixture cases: expected {expected}, got {got}"]


def regrading(batch: Batch, cli) -> list[str]:
    """Does grading the same batch again in the same work folder give the same CSV (no duplicated rows)?"""
    first = batch.csv.read_text()
    done = cli("--root", batch.lesson.root, "grade", batch.lesson.name, batch.submissions, "--workdir", batch.workdir)
    second = batch.csv.read_text()
    return [] if (done.returncode, second) == (batch.returncode, first) else [f"regrading changed:\n{second}"]


def _hidden_lines(lesson) -> set[str]:
    """Distinctive lines of the hidden test regions (short ones like `finally:` also occur in tracebacks)."""
    (source_path,) = lesson.notebooks
    lines = set()
    for cell in nbformat.read(source_path, as_version=4).cells:
        hidden = re.findall(r"BEGIN HIDDEN TESTS\n(.*?)\n[^\n]*END HIDDEN TESTS", cell.source, flags=re.S)
        lines |= {line.strip() for block in hidden for line in block.splitlines() if len(line.strip()) >= 16}
    return lines


def feedback(batch: Batch, cli, released: Path) -> list[str]:
    """Is there feedback for every graded student, without any line of the hidden tests in it?"""
    done = cli("--root", batch.lesson.root, "feedback", batch.lesson.name, "--workdir", batch.workdir)
    if done.returncode != 0:
        return [f"feedback failed: {done.stderr}"]
    visible = "\n".join(c.source for p in released.glob("*.ipynb") for c in nbformat.read(p, as_version=4).cells)
    hidden = {line for line in _hidden_lines(batch.lesson) if line not in visible}
    problems = [] if hidden else ["the lesson has no hidden tests to look for"]
    graded = {s for s, r in batch.rows().items() if r["status"] == "ok"}
    files = {p.parents[1].name: p for p in (batch.workdir / "feedback").glob(f"*/{batch.lesson.name}/*.html")}
    if set(files) != graded:
        problems.append(f"feedback for {sorted(files)}, graded {sorted(graded)}")
    for student, path in files.items():
        text = html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))  # tracebacks are coloured in spans
        leaked = [line for line in hidden if line in text]
        problems += [f"hidden tests in the feedback of {student}: {leaked}"] if leaked else []
        if "all tests passed" in text.lower():
            problems.append(f"the feedback of {student} claims 'all tests passed' (only visible tests ran there)")
    return problems


def export(batch: Batch, cli) -> list[str]:
    """Does `export` write one row per student (failed ones included) with the batch's scores?"""
    out = batch.workdir / "export.csv"
    done = cli("export", "--workdir", batch.workdir, "--out", out)
    if done.returncode != 0:
        return [f"export failed: {done.stderr}"]
    with out.open() as f:
        got = {r["student"]: (r["lesson"], r["score"], r["status"]) for r in csv.DictReader(f)}
    lesson = batch.lesson.name
    expected = {  # an unusable id (named by its path) never reaches the gradebook
        s: (lesson, r["score"], "graded" if r["status"] == "ok" else "not graded")
        for s, r in batch.rows().items()
        if "/" not in s
    }
    return [] if got == expected else [f"export: expected {expected}, got {got}"]


def test_dead_or_stuck_kernel_costs_only_its_cells(fixture_lesson, tmp_path: Path, cli):
    """Does a submission that kills its kernel, or ignores the interrupt after a timeout, lose only the exercise
    whose cell took the kernel down (the reason recorded), while a cell that merely loops is interrupted and
    the rest of the notebook and of the batch is graded?"""
    lesson = fixture_lesson
    (source_path,) = lesson.notebooks
    released = generate_release(lesson.root / "solutions", lesson.name, tmp_path / "release")
    found = exercises(nbformat.read(source_path, as_version=4))
    extra = {
        "dies": "import os\nos._exit(1)",
        "stuck": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        "loops": "while True:\n    pass",
        "fine": "",
    }
    for student, code in extra.items():
        nb = answered(nbformat.read(released / source_path.name, as_version=4), found)
        first = next(c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution"))
        first.source += "\n" + code
        (tmp_path / "subs" / student).mkdir(parents=True)
        nbformat.write(nb, tmp_path / "subs" / student / source_path.name)
    done = cli(
        "--root", lesson.root, "grade", lesson.name, tmp_path / "subs", "--workdir", tmp_path / "work", "--timeout", 5
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with (tmp_path / "work" / "grades" / f"{lesson.name}.csv").open() as f:
        rows = {r["student"]: (r["status"], r["score"], r["reason"]) for r in csv.DictReader(f)}
    # the killer cell defines add() before dying; the fresh kernel replays the cells that ran fine, not it
    assert rows["dies"][:2] == ("ok", "3") and "kernel died" in rows["dies"][2]
    assert rows["stuck"][:2] == ("ok", "3") and "did not stop when interrupted" in rows["stuck"][2]
    assert rows["loops"][:2] == rows["fine"][:2] == ("ok", "5")
    assert "interrupted after 5 s" in rows["loops"][2] and rows["fine"][2] == ""
    assert "grading WITHOUT a sandbox" not in done.stderr
