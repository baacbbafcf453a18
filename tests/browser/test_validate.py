"""A student's round trip in the browser: open a released notebook, write one answer, run its test cell, save,
and press nbgrader's Validate button; the instructor-only tools are not there.

The notebook is the released one (course/, copied), with answer cells still raising NotImplementedError, so
Validate must report the other exercises' test cells and not the answered one.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import nbformat
import pytest

from .notebooks import answers

LESSON, EXERCISE = "02_vae", "02_reparameterize"


def first_line(source: str) -> str:
    return source.strip().splitlines()[0].strip('"').strip()


def test_instructor_tools_are_off_in_student_mode(lab):
    """Does the student's JupyterLab offer the assignment list but no formgrader, course list or create-assignment?"""
    lab.open(f"{LESSON}/{LESSON}.ipynb")
    items = lab.menu_items("Nbgrader")
    assert "Assignment List" in items, items
    assert not {"Formgrader", "Course List"} & set(items), items
    assert lab.page.get_by_text("Create Assignment").count() == 0  # the instructor's cell toolbar
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{lab.server.url}/formgrader?token={lab.server.token}", timeout=10)
    assert err.value.code == 404


def test_student_answers_one_exercise_and_validates(lab):
    """Does a typed answer pass its visible test, get saved as typed, and leave only the other exercises' test
    cells in nbgrader's Validate report?"""
    path = f"{LESSON}/{LESSON}.ipynb"
    lab.open(path)
    answer = answers(LESSON)[EXERCISE]
    i, t = lab.cell_index(grade_id=EXERCISE), lab.cell_index(grade_id=f"test_{EXERCISE}")
    lab.select(i)
    lab.menu("Run", "Run All Above Selected Cell")  # the set-up cells the answer needs, no more
    lab.wait_idle()
    lab.type_into(i, answer)
    lab.run_cell(i)
    output = lab.run_cell(t)
    lab.shot("answered-and-tested")
    assert not lab.code_errors(), lab.code_errors()
    assert "passed" in output, f"the visible test printed {output!r}"
    lab.save()
    saved = nbformat.read(lab.server.root / path, as_version=4)
    assert saved.cells[i].source == answer, "the editor changed the typed answer (auto-indent or brackets?)"

    lab.page.locator(".jp-NotebookPanel-toolbar").get_by_text("Validate", exact=True).click()
    dialog = lab.page.locator(".jp-Dialog")
    dialog.wait_for(timeout=240_000)  # Validate runs the whole notebook (FAST mode) in a fresh kernel
    lab.page.wait_for_timeout(300)
    report = dialog.inner_text()
    lab.shot("validate-dialog")
    graded = {c["grade_id"]: first_line(c["source"]) for c in lab.state()["cells"]
              if (c["grade_id"] or "").startswith("test_")}
    assert len(graded) >= 2
    failed = {gid for gid, line in graded.items() if line in report}
    assert f"test_{EXERCISE}" not in failed, f"Validate reports the answered exercise as failing:\n{report[:2000]}"
    assert failed == set(graded) - {f"test_{EXERCISE}"}, (
        f"Validate should report exactly the unanswered exercises {sorted(set(graded) - {f'test_{EXERCISE}'})}, "
        f"it reported {sorted(failed)}:\n{report[:2000]}")
    assert "NotImplementedError" in report
