"""Finding students' notebooks in a folder or .zip, and telling a damaged notebook apart."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.submissions import find_submissions, notebook_problem, open_submissions, student_id

NOTEBOOK = nbformat.writes(nbformat.v4.new_notebook())


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _found(folder: Path, label: str = "subs") -> dict[str, tuple[dict[str, str], str]]:
    subs = find_submissions(folder, "99_demo", ["99_demo"], label)
    return {
        s.student or s.folder: ({k: p.relative_to(folder).as_posix() for k, p in s.notebooks.items()}, s.error) for s in subs
    }


LAYOUT = {
    "alice/99_demo.ipynb": NOTEBOOK,  # named like the lesson's notebook
    "bob/my work.ipynb": NOTEBOOK,  # any single notebook
    "carol/99_demo/whatever.ipynb": NOTEBOOK,  # nested folder per lesson
    "dave/99_demo.ipynb": NOTEBOOK,  # the lesson's name wins over other notebooks
    "dave/scratch.ipynb": NOTEBOOK,
    "dave/.ipynb_checkpoints/99_demo-checkpoint.ipynb": NOTEBOOK,
}
EXPECTED = {
    "alice": ({"99_demo": "alice/99_demo.ipynb"}, ""),
    "bob": ({"99_demo": "bob/my work.ipynb"}, ""),
    "carol": ({"99_demo": "carol/99_demo/whatever.ipynb"}, ""),
    "dave": ({"99_demo": "dave/99_demo.ipynb"}, ""),
}


def test_folder_layouts_are_found(tmp_path: Path):
    """Are flat, 'any single notebook' and nested-per-lesson student folders all found?"""
    assert _found(_write(tmp_path, LAYOUT)) == EXPECTED


def test_zip_with_a_wrapping_folder_is_found(tmp_path: Path):
    """Is a .zip of the same layout, wrapped in one more folder, read the same way?"""
    archive = tmp_path / "subs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, text in LAYOUT.items():
            z.writestr(f"submissions/{name}", text)
        z.writestr("__MACOSX/._alice", "junk")
    with open_submissions(archive) as (folder, label):
        found = find_submissions(folder, "99_demo", ["99_demo"], label)
        assert {s.student: s.error for s in found} == dict.fromkeys(EXPECTED, "")
        assert found[0].folder == f"{archive}:alice"


def test_lone_student_folder_is_not_taken_for_a_wrapper(tmp_path: Path):
    """Is a batch with a single student (nested layout) still that student, not a wrapping folder?"""
    _write(tmp_path, {"erin/99_demo/99_demo.ipynb": NOTEBOOK})
    assert _found(tmp_path) == {"erin": ({"99_demo": "erin/99_demo/99_demo.ipynb"}, "")}


def test_unusable_and_clashing_ids_and_ambiguous_folders_are_reported(tmp_path: Path):
    """Do bad folder names, clashing ids, loose or ambiguous notebooks give a clear error, not a crash?"""
    _write(
        tmp_path,
        {
            "@@@/99_demo.ipynb": NOTEBOOK,
            "ann lee/99_demo.ipynb": NOTEBOOK,
            "ann_lee/99_demo.ipynb": NOTEBOOK,
            "loose.ipynb": NOTEBOOK,
            "two/a.ipynb": NOTEBOOK,
            "two/b.ipynb": NOTEBOOK,
            "empty/notes.txt": "",
        },
    )
    errors = {key: error for key, (_, error) in _found(tmp_path).items()}
    assert errors["subs/@@@"] == "subs/@@@: unusable student id '@@@': the folder name needs letters or digits"
    assert errors["ann_lee"] == "subs/ann lee and subs/ann_lee give the same student id 'ann_lee': rename one of them"
    assert "outside a student folder" in errors["subs/loose.ipynb"]
    assert errors["two"] == "subs/two: several notebooks and none named 99_demo.ipynb: a.ipynb, b.ipynb"
    assert errors["empty"] == "subs/empty: no notebook (.ipynb) found"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice", "alice"),
        ("José Díaz", "Jose_Diaz"),
        ("  x/y*z  ", "x_y_z"),
        ("s1234.5", "s1234.5"),
        ("-a-", "a"),
    ],
    ids=["plain", "accents", "slash-star", "dots", "dashes"],
)
def test_student_ids_are_made_safe(name: str, expected: str):
    """Are student ids reduced to letters, digits, '.', '_' and '-' (safe in paths and nbgrader's globs)?"""
    assert student_id(name) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"cells": [\n  {\n    oops', "bad.ipynb: not valid JSON (line 3, column 5): Expecting property name"),
        ("[1, 2]", "bad.ipynb: not a Jupyter notebook"),
        ('{"cells": []}', "bad.ipynb: not a Jupyter notebook"),
        ("", "bad.ipynb: not valid JSON (line 1, column 1)"),
    ],
    ids=["truncated", "json-list", "no-nbformat", "empty"],
)
def test_damaged_notebooks_are_named_with_a_plain_reason(tmp_path: Path, text: str, expected: str):
    """Does a file that is not JSON, or JSON that is no notebook, get a one-line reason naming it?"""
    (tmp_path / "bad.ipynb").write_text(text)
    assert notebook_problem(tmp_path / "bad.ipynb", "bad.ipynb").startswith(expected)


def test_a_notebook_has_no_problem(tmp_path: Path):
    """Does a valid notebook (also an older nbformat 4 minor version) pass the check?"""
    nb = json.loads(NOTEBOOK)
    nb["nbformat_minor"] = 2
    for cell in nb["cells"]:
        cell.pop("id", None)
    (tmp_path / "ok.ipynb").write_text(json.dumps(nb))
    assert notebook_problem(tmp_path / "ok.ipynb", "ok.ipynb") == ""
