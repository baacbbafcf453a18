"""Notebooks as a student has them: the released course notebook with some or all answers written in.

The answers are the solution cells of solutions/ with nbgrader's solution markers removed, matched to the
released notebook's answer cells by their nbgrader grade_id, so the locked cells stay exactly as released.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if meta.get("solution") and not meta.get("grade") else None


def answers(lesson: str) -> dict[str, str]:
    """{grade_id: the answer a student would type} for each autograded answer cell of `lesson`."""
    source = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    found = {}
    for cell in source.cells:
        gid = _grade_id(cell)
        if cell.cell_type == "code" and gid:
            found[gid] = "\n".join(line for line in cell.source.splitlines() if not MARKER.match(line))
    if not found:
        raise ValueError(f"{lesson}: no answer cells (nbgrader solution cells) in solutions/{lesson}")
    return found


def answered_notebook(lesson: str, only: set[str] | None = None):
    """The released notebook of `lesson` with the answers (all, or the grade_ids in `only`) written in."""
    nb = nbformat.read(ROOT / "course" / lesson / f"{lesson}.ipynb", as_version=4)
    filled = answers(lesson)
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid in filled and (only is None or gid in only):
            cell.source = filled[gid]
    return nb
