"""Find the students' notebooks in a folder or .zip of submissions, and check that they are notebooks.

Accepted layouts (SUB is the folder, or the zip's content, possibly wrapped in one more folder):
    SUB/<student>/<LESSON>.ipynb          or any single .ipynb in the student's folder
    SUB/<student>/<LESSON>/*.ipynb        notebooks matched to the lesson's by name, or the only one
Student ids come from the folder names, made safe for nbgrader (paths, globs, the gradebook).
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["Submission", "open_submissions", "find_submissions", "student_id", "notebook_problem"]

MAX_ID_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_JUNK = ("__MACOSX", ".ipynb_checkpoints", "__pycache__")


@dataclass
class Submission:
    """One student's submission: `notebooks` maps the lesson's notebook names to submitted files."""

    folder: str  # as named in the submissions, e.g. "subs.zip:alice" (for messages and unusable ids)
    student: str = ""  # the sanitised id; "" when the folder name gives no usable id
    notebooks: dict[str, Path] = field(default_factory=dict)
    error: str = ""  # why it cannot be graded, if it cannot


def student_id(name: str) -> str:
    """A safe student id from a folder name ("José Díaz" -> "Jose_Diaz"); ValueError if there is none."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    sid = _UNSAFE.sub("_", ascii_name.strip()).strip("._-")
    if not sid:
        raise ValueError(f"unusable student id {name!r}: the folder name needs letters or digits")
    if len(sid) > MAX_ID_LENGTH:
        raise ValueError(f"unusable student id {name!r}: longer than {MAX_ID_LENGTH} characters")
    return sid


@contextlib.contextmanager
def open_submissions(path: Path) -> Iterator[tuple[Path, str]]:
    """Yield (folder, label) for a folder or a .zip (extracted into a temporary folder)."""
    path = Path(path)
    if path.is_dir():
        yield path, str(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        with tempfile.TemporaryDirectory(prefix="gm-submissions-") as tmp, zipfile.ZipFile(path) as archive:
            archive.extractall(tmp)  # extractall drops absolute paths and '..' from member names
            yield Path(tmp), f"{path}:"
    elif path.exists():
        raise ValueError(f"{path}: neither a folder nor a .zip file")
    else:
        raise FileNotFoundError(f"{path}: no such folder or .zip file")


def find_submissions(folder: Path, lesson: str, notebook_names: list[str], label: str = "") -> list[Submission]:
    """The submissions in `folder` for `lesson`, whose notebooks are `notebook_names` (without .ipynb)."""
    folder = _unwrap(folder, lesson)
    label = label if label.endswith(":") or not label else label + "/"
    found = []
    for entry in _entries(folder):
        where = label + entry.relative_to(folder).as_posix()
        if entry.is_file():
            if entry.suffix == ".ipynb":
                found.append(
                    Submission(
                        where, error=f"{where}: a notebook outside a student folder (expected <student>/<notebook>.ipynb)"
                    )
                )
            continue
        sub = Submission(where)
        try:
            sub.student = student_id(entry.name)
        except ValueError as err:
            sub.error = f"{where}: {err}"
            found.append(sub)
            continue
        sub.notebooks, sub.error = _match_notebooks(entry, lesson, notebook_names, where)
        found.append(sub)
    _flag_duplicate_ids(found)
    return sorted(found, key=lambda s: (s.student, s.folder))


def notebook_problem(path: Path, name: str) -> str:
    """Why the file at `path` (called `name` in messages) is not a readable notebook; "" if it is one."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        return f"{name}: not UTF-8 text (byte {err.start}): {err.reason}"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        return f"{name}: not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}"
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        return f"{name}: not a Jupyter notebook: no nbformat version (is it a notebook saved by Jupyter?)"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as err:  # nbformat raises many types for a JSON file that is no notebook
        return f"{name}: not a Jupyter notebook: {type(err).__name__}: {err}"
    if not isinstance(nb.get("cells"), list):
        return f"{name}: not a Jupyter notebook: no list of cells"
    return ""


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name not in _JUNK)


def _unwrap(folder: Path, lesson: str) -> Path:
    """Step into a lone wrapping folder (a zip of `submissions/`), but not into a lone student's folder."""
    while True:
        entries = _entries(folder)
        if len(entries) != 1 or not entries[0].is_dir():
            return folder
        inner = entries[0]
        if (inner / lesson).is_dir() or any(p.suffix == ".ipynb" for p in _entries(inner)):
            return folder  # `inner` is a student
        folder = inner


def _match_notebooks(student_dir: Path, lesson: str, names: list[str], where: str) -> tuple[dict[str, Path], str]:
    nested = student_dir / lesson
    base = nested if nested.is_dir() else student_dir
    candidates = {p.stem: p for p in _entries(base) if p.is_file() and p.suffix == ".ipynb"}
    where = f"{where}/{lesson}" if base is nested else where
    if not candidates:
        return {}, f"{where}: no notebook (.ipynb) found"
    if len(names) == 1 and names[0] not in candidates:
        if len(candidates) == 1:
            return {names[0]: next(iter(candidates.values()))}, ""
        listed = ", ".join(sorted(f"{c}.ipynb" for c in candidates))
        return {}, f"{where}: several notebooks and none named {names[0]}.ipynb: {listed}"
    matched = {name: candidates[name] for name in names if name in candidates}
    missing = [f"{name}.ipynb" for name in names if name not in candidates]
    return matched, (f"{where}: missing {', '.join(missing)}" if missing else "")


def _flag_duplicate_ids(subs: list[Submission]) -> None:
    by_id: dict[str, list[Submission]] = {}
    for sub in subs:
        if sub.student:
            by_id.setdefault(sub.student, []).append(sub)
    for sid, same in by_id.items():
        if len(same) > 1:
            folders = " and ".join(s.folder for s in same)
            for sub in same:
                sub.error = f"{folders} give the same student id {sid!r}: rename one of them"
