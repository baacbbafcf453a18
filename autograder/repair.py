"""Repair a submitted notebook from the released one before grading (trusted side, no student code runs).

A student's notebook file is only trusted for the answers in it. `repair` rebuilds the notebook from the
release: every cell of the released notebook is kept in order and in its released type; an answer cell
(nbgrader `solution`) takes the student's source (the first cell with its grade_id; duplicates are dropped);
locked cells and tests come from the release (nbgrader then puts the hidden tests back); cells the student
added without nbgrader metadata stay after the cell they followed. Non-UTF-8 bytes are replaced and an old
nbformat upgraded. Each change is reported, so the grade can say why it differs from what the student saw.
What cannot be repaired (not JSON, not a notebook) raises Unrepairable with a reason; it scores 0.
"""

from __future__ import annotations

import copy
import json
import uuid

import nbformat
from nbformat.notebooknode import NotebookNode

__all__ = ["Unrepairable", "repair", "read_submission"]


class Unrepairable(ValueError):
    """The file cannot be turned into a gradeable notebook; the message says why."""


def _grade_id(cell) -> str | None:
    return (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")


def _is_answer(cell) -> bool:
    return bool((cell.get("metadata", {}).get("nbgrader") or {}).get("solution"))


def read_submission(data: bytes, name: str) -> tuple[NotebookNode, list[str]]:
    """Parse the bytes of a submitted notebook; returns (notebook v4, notes on what was fixed)."""
    notes = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        text = data.decode("utf-8", errors="replace")
        notes.append(f"bytes that are not UTF-8 (first at byte {err.start}) replaced by U+FFFD")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise Unrepairable(f"{name}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        raise Unrepairable(f"{name}: not a Jupyter notebook: no nbformat version (is it a notebook saved by Jupyter?)")
    version = raw["nbformat"]
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises many types for a JSON file that is no notebook
        raise Unrepairable(f"{name}: not a Jupyter notebook: {type(err).__name__}: {err}") from None
    if not isinstance(nb.get("cells"), list):
        raise Unrepairable(f"{name}: not a Jupyter notebook: no list of cells")
    if version != 4:
        notes.append(f"upgraded from nbformat {version} to 4")
    return nb, notes


def repair(student: NotebookNode, release: NotebookNode) -> tuple[NotebookNode, list[str]]:
    """The student's notebook rebuilt on the released one; returns (notebook, notes on each repair)."""
    notes: list[str] = []
    released_ids = {_grade_id(c) for c in release.cells if _grade_id(c)}
    answers: dict[str, NotebookNode] = {}
    seen: dict[str, int] = {}
    extras_after: dict[str | None, list[NotebookNode]] = {}
    anchor: str | None = None
    for cell in student.cells:
        gid = _grade_id(cell)
        if gid in released_ids:
            seen[gid] = seen.get(gid, 0) + 1
            if seen[gid] == 1:
                answers[gid] = cell
            anchor = gid
        elif gid is None and "nbgrader" not in cell.get("metadata", {}):
            extras_after.setdefault(anchor, []).append(copy.deepcopy(cell))
        else:
            notes.append(f"dropped a cell with unknown grade id {gid!r}")
    for gid, count in seen.items():
        if count > 1:
            notes.append(f"cell {gid}: {count - 1} duplicate(s) dropped")

    cells = list(extras_after.get(None, []))
    for ref in release.cells:
        gid = _grade_id(ref)
        cell = copy.deepcopy(ref)
        if gid is not None:
            mine = answers.get(gid)
            if mine is None:
                notes.append(f"cell {gid}: missing, restored from the release")
            elif _is_answer(ref):
                if mine.get("cell_type") != ref.cell_type:
                    notes.append(f"cell {gid}: type {mine.get('cell_type')} changed back to {ref.cell_type}")
                cell.source = mine.get("source", "")
            elif mine.get("source", "") != ref.source or mine.get("cell_type") != ref.cell_type:
                notes.append(f"cell {gid}: locked cell edited, restored from the release")
        cells.append(cell)
        if gid is not None:
            cells.extend(extras_after.get(gid, []))
    ids: set[str] = set()
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        if not isinstance(cell.get("id"), str) or cell.get("id") in ids:
            cell["id"] = uuid.uuid4().hex[:8]
        ids.add(cell["id"])
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(release.metadata))
    nb.cells = [nbformat.from_dict(c) for c in cells]
    nbformat.validate(nb)
    return nb, notes
