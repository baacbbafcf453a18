"""Grades out of the pipeline: the per-batch CSV, a printed table, and the export of the whole gradebook."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from .grading import Result

__all__ = ["write_grades", "format_table", "export_gradebook"]


def _num(x: float) -> str:
    return f"{x:g}"


def write_grades(path: Path, results: list[Result], columns: list[str]) -> Path:
    """CSV of one batch: student, score, max_score, one column per grade cell, status, reason."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["student", "score", "max_score", *columns, "status", "reason"])
        for r in sorted(results, key=lambda r: r.student):
            cells = [_num(r.cells.get(c, 0.0)) for c in columns]
            writer.writerow([r.student, _num(r.score), _num(r.max_score), *cells, r.status, r.reason])
    return path


def format_table(results: list[Result]) -> str:
    """A plain-text table of the batch, one line per student."""
    rows = [("student", "score", "status", "reason")]
    rows += [(r.student, f"{_num(r.score)}/{_num(r.max_score)}", r.status, r.reason) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3] for row in rows
    ).rstrip()


def export_gradebook(db_url: str) -> tuple[str, int]:
    """CSV text of every student x lesson in the gradebook (a lesson not graded for a student scores 0)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", "lesson", "score", "max_score", "status"])
    count = 0
    with Gradebook(db_url) as gb:
        for student in sorted(gb.students, key=lambda s: s.id):
            for assignment in sorted(gb.assignments, key=lambda a: a.name):
                try:
                    sub = gb.find_submission(assignment.name, student.id)
                    row = [_num(sub.score), _num(sub.max_score), "graded"]
                except MissingEntry:
                    row = ["0", _num(assignment.max_score), "not graded"]
                writer.writerow([student.id, assignment.name, *row])
                count += 1
    return out.getvalue(), count
