"""Released and solution notebooks, checked with nbgrader's own Validator (kernels in FAST mode)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbformat import NotebookNode
from nbgrader import utils as nbutils
from nbgrader.validator import Validator

from autograder.course import source_notebooks
from autograder.settings import nbgrader_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fast_kernel_env")]

# These tests check what the notebooks compute, not how fast (speed targets live in benchmarks): a cell gets
# far longer than while grading, so that a busy machine does not turn a slow training cell into an error.
CELL_TIMEOUT = 600


class RecordingValidator(Validator):
    """nbgrader's Validator that keeps the notebook it executed (to look at the cells it does not judge)."""

    executed: NotebookNode | None = None

    def _preprocess(self, nb: NotebookNode) -> NotebookNode:
        self.executed = super()._preprocess(nb)
        return self.executed


def _is_test_cell(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and nbutils.is_grade(cell) and not nbutils.is_solution(cell)


def _errors(cell: NotebookNode) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]


def test_released_notebook_fails_every_graded_test_and_nothing_else(released: Path, tmp_path: Path):
    """Does each graded test cell of the untouched student notebook fail, with no other cell raising?"""
    notebooks = source_notebooks(released)
    assert notebooks, f"no notebook in {released}"
    for path in notebooks:
        validator = RecordingValidator(invert=True, config=nbgrader_config(tmp_path, timeout=CELL_TIMEOUT))
        results = validator.validate(str(path))
        # invert=True: {} when no graded cell passes; "passed" lists the ones that do; "changed" and
        # "type_changed" mean the released notebook does not match its own checksums.
        assert set(results) <= {"passed"}, f"{path}: {results}"
        assert results.get("passed", []) == [], f"{path}: graded tests pass on the stub: {results['passed']}"

        cells = validator.executed.cells
        tests = [c for c in cells if _is_test_cell(c)]
        assert tests, f"{path} has no graded test cell"
        assert all(_errors(c) for c in tests), f"{path}: a graded test cell did not raise"
        others = {c.source[:60]: _errors(c) for c in cells if c.cell_type == "code" and not _is_test_cell(c)}
        assert {src: e for src, e in others.items() if e} == {}, f"{path}: cells other than tests raise"


def test_solution_notebook_validates_clean(lesson, tmp_path: Path):
    """Does the solution (source) notebook pass every graded test, as nbgrader's Validator sees it?"""
    for path in lesson.notebooks:
        results = Validator(config=nbgrader_config(tmp_path, timeout=CELL_TIMEOUT)).validate(str(path))
        assert results == {}, f"{path}: {results}"
