"""The course's front page (course/index.ipynb) against the lessons that exist."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from autograder.course import list_lessons
from autograder.index import REGISTRY, build_index, main, registry_problems

REPO = Path(__file__).resolve().parents[1]


def _linked_lessons(nb) -> list[str]:
    text = "\n".join(c.source for c in nb.cells)
    return re.findall(r"\]\((\d\d_[A-Za-z0-9_]+)/\1\.ipynb\)", text)


def test_every_lesson_is_in_the_registry_and_the_registry_is_consistent():
    """Does the registry know every lesson of solutions/, with levels and prerequisites that make sense?"""
    assert registry_problems(REPO / "solutions") == []


def test_index_lists_exactly_the_lessons_that_exist_in_both_trees():
    """Is every lesson linked from the index present in solutions/ and course/, and is every lesson linked?"""
    nb = nbformat.read(REPO / "course" / "index.ipynb", as_version=4)
    linked = _linked_lessons(nb)
    assert linked == sorted(linked) and len(set(linked)) == len(linked)
    assert set(linked) == set(list_lessons(REPO / "solutions"))
    for name in linked:
        assert (REPO / "solutions" / name / f"{name}.ipynb").is_file()
        assert (REPO / "course" / name / f"{name}.ipynb").is_file()


def test_index_is_up_to_date():
    """Is course/index.ipynb what `python -m autograder.index` writes now?"""
    assert main(["--check"]) == 0, "run `python -m autograder.index` (make course) and commit course/index.ipynb"


def test_prerequisites_come_earlier_in_the_course(tmp_path):
    """Does every lesson only require lessons numbered before it, so the path can be followed in order?"""
    order = [info.name for info in REGISTRY]
    for info in REGISTRY:
        assert all(order.index(r) < order.index(info.name) for r in info.requires), info


def test_an_unregistered_lesson_is_reported(tmp_path):
    """Is a lesson folder the registry does not know named as a problem, and left out of the index?"""
    (tmp_path / "solutions" / "42_mystery").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "solutions" / "42_mystery" / "42_mystery.ipynb")
    assert any("42_mystery" in p for p in registry_problems(tmp_path / "solutions"))
    assert _linked_lessons(build_index(tmp_path)) == []
