"""The preprocessors the course adds to nbgrader: the grading kernel's environment, hidden tests kept out of feedback."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from autograder.execute import GradingExecute
from autograder.feedback import REDACTED, HideHiddenTestTracebacks, RedactHiddenTests
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


SECRET = "check_close(gaussian_kl(mu, logvar), ref, atol=1e-6)"


def _leaky_notebook():
    test = new_code_cell(f"x = 1\n### BEGIN HIDDEN TESTS\n{SECRET}\nelse:\n### END HIDDEN TESTS\nprint('ok')")
    test.outputs = [new_output("stream", name="stdout", text="ok\n")]
    leak = new_code_cell("print(In)")  # the student's code, run after the hidden tests, quotes them
    history = ["", test.source]
    leak.outputs = [
        new_output("stream", name="stdout", text=f"before\n{history!r}\nafter\n"),
        new_output("stream", name="stdout", text="\n".join(history)),
        new_output("display_data", data={"text/html": f"<pre>{html.escape(test.source)}</pre>",
                                         "application/json": {"code": [test.source]}}),
        new_output("error", ename="ValueError", evalue=SECRET, traceback=[f"ValueError: {SECRET}"]),
        new_output("stream", name="stdout", text="else:\nprint('ok')\nx = 1\n"),  # lines that reveal nothing
    ]  # fmt: skip
    return new_notebook(cells=[test, leak])


def test_outputs_quoting_hidden_tests_are_removed_from_feedback():
    """Is every output line that quotes a hidden test line (raw, in a repr, JSON or HTML, in an error) replaced,
    in every cell, while lines that are not in the hidden tests (or too short to tell anything) stay?"""
    nb, _ = RedactHiddenTests().preprocess(_leaky_notebook(), {})
    outs = nb.cells[1].outputs
    text = str([dict(o) for o in outs])
    assert "gaussian_kl" not in text and "ref, atol" not in text and "HIDDEN TESTS" not in text
    assert outs[0].text == f"before\n{REDACTED}\nafter\n"
    assert REDACTED in outs[1].text and "x = 1" in outs[1].text
    assert REDACTED in outs[2].data["text/html"] and REDACTED in outs[2].data["application/json"]["code"][0]
    assert outs[3].evalue == REDACTED and outs[3].traceback == [REDACTED]
    assert outs[4].text == "else:\nprint('ok')\nx = 1\n"
    assert nb.cells[0].outputs[0].text == "ok\n"
