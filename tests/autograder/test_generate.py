"""course/ is exactly what nbgrader generates from solutions/ (`python -m autograder generate`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.course import compare_trees, generate_release
from autograder.settings import SOURCE_DIR

FIXTURE_ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "minicourse"


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_generation_is_deterministic(lesson, tmp_path: Path):
    """Does generating the lesson twice give the same bytes (so course/ can be checked byte for byte)?"""
    first = generate_release(lesson.root / SOURCE_DIR, lesson.name, tmp_path / "first")
    second = generate_release(lesson.root / SOURCE_DIR, lesson.name, tmp_path / "second")
    assert any(first.glob("*.ipynb"))
    assert compare_trees(first, second) == []


@pytest.mark.slow
def test_committed_course_is_up_to_date(repo_lesson, cli):
    """Does `generate --check` find the committed course/<lesson>/ byte for byte as generated?"""
    if not repo_lesson.release_dir.is_dir():
        pytest.skip(f"{repo_lesson.release_dir} not generated yet (run `make course`)")
    done = cli("--root", repo_lesson.root, "generate", repo_lesson.name, "--check")
    assert done.returncode == 0, done.stderr


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A fresh course root holding a copy of the fixture's solutions/."""
    shutil.copytree(FIXTURE_ROOT / "solutions", tmp_path / "solutions")
    return tmp_path


@pytest.mark.slow
def test_generate_writes_then_checks_clean(course: Path, cli):
    """Does `generate` write course/ (again the same bytes when rerun) and `--check` then pass?"""
    done = cli("--root", course, "generate", "99_demo")
    assert done.returncode == 0, done.stderr
    first = _files(course / "course")
    assert list(first) == [course / "course/99_demo/99_demo.ipynb"]
    shutil.rmtree(course / "course")
    assert cli("--root", course, "generate").returncode == 0  # every lesson (here: one)
    assert _files(course / "course") == first
    done = cli("--root", course, "generate", "--check")
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


@pytest.mark.slow
def test_check_lists_changed_missing_and_extra_files(course: Path, cli):
    """Does `generate --check` write nothing, exit 1 and name each file that differs, is missing or extra?"""
    assert cli("--root", course, "generate").returncode == 0
    release = course / "course" / "99_demo"
    notebook = release / "99_demo.ipynb"
    notebook.write_bytes(notebook.read_bytes() + b"\n")
    (release / "notes.txt").write_text("stray")
    (course / "course" / "00_gone").mkdir()
    before = _files(course / "course")

    done = cli("--root", course, "generate", "--check")
    assert done.returncode == 1
    assert f"{notebook}: differs" in done.stderr
    assert f"{release / 'notes.txt'}: extra" in done.stderr
    assert f"{course / 'course' / '00_gone'}: extra" in done.stderr
    assert "make course" in done.stderr
    assert _files(course / "course") == before

    notebook.unlink()
    done = cli("--root", course, "generate", "99_demo", "--check")
    assert done.returncode == 1 and f"{notebook}: missing" in done.stderr


def test_unknown_lesson_is_a_usage_error(tmp_path: Path, cli):
    """Is a lesson that is not in solutions/ refused with exit status 2 and a clear message?"""
    (tmp_path / "solutions").mkdir()
    done = cli("--root", tmp_path, "generate", "42_nothing")
    assert done.returncode == 2
    assert "no lesson 42_nothing" in done.stderr



def test_no_graded_cell_claims_all_tests_passed(lesson):
    """A student's copy runs the visible tests only: does no graded cell say "all tests passed"?"""
    claims = [f"{path.name}:{cell.metadata.get('nbgrader', {}).get('grade_id', '?')}" for path in lesson.notebooks
              for cell in nbformat.read(path, as_version=4).cells
              if cell.cell_type == "code" and "all tests passed" in cell.source.lower()]  # fmt: skip
    assert not claims, f"cells that claim 'all tests passed' (say 'visible tests passed'): {claims}"


def test_every_graded_cell_exports_values_for_the_grader(repo_lesson):
    """Does every graded test cell of a lesson export, in its hidden tests, values that the grader compares
    outside the student's kernel (autograder.expect), so no cell is decided by the kernel alone?"""
    bare = []
    for path in repo_lesson.notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
                continue
            hidden = re.findall(r"BEGIN HIDDEN TESTS\n(.*?)END HIDDEN TESTS", cell.source, flags=re.S)
            if not any(re.search(r"^\s*expect\(", block, flags=re.M) for block in hidden):
                bare.append(meta["grade_id"])
    assert not bare, f"graded cells whose hidden tests export nothing (see README, Writing hidden tests): {bare}"

