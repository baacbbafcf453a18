"""The two preprocessors the course adds to nbgrader: the grading kernel's environment, hidden tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from autograder.execute import GradingExecute
from autograder.feedback import HideHiddenTestTracebacks
from autograder.settings import nbgrader_config


@pytest.mark.slow
def test_grading_kernel_runs_in_fast_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Does the grading kernel see GMLIB_FAST=1 even when the grader's own environment lacks it?"""
    monkeypatch.delenv("GMLIB_FAST", raising=False)
    nb = new_notebook(cells=[new_code_cell('import os\nprint(os.environ.get("GMLIB_FAST"))')])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    executor = GradingExecute(config=nbgrader_config(tmp_path))
    nb, _ = executor.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert nb.cells[0].outputs[0].text == "1\n"


def _error(traceback: list[str]):
    return new_output("error", ename="AssertionError", evalue="bad", traceback=traceback)


def test_tracebacks_of_cells_with_hidden_tests_are_cut_to_one_line():
    """Is a traceback quoting hidden test lines replaced by `AssertionError: bad`, other tracebacks kept?"""
    hidden = new_code_cell("assert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n### END HIDDEN TESTS")
    hidden.outputs = [_error(["----> 3 assert f(2) == 4", "AssertionError: bad"])]
    visible = new_code_cell("assert f(1) == 1")
    visible.outputs = [_error(["----> 1 assert f(1) == 1", "AssertionError: bad"])]
    nb, _ = HideHiddenTestTracebacks().preprocess(new_notebook(cells=[hidden, visible]), {})
    assert nb.cells[0].outputs[0].traceback == ["\x1b[0;31mAssertionError\x1b[0m: bad"]
    assert nb.cells[1].outputs[0].traceback == ["----> 1 assert f(1) == 1", "AssertionError: bad"]
