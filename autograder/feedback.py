"""Feedback without the hidden tests.

nbgrader builds feedback from the autograded notebook, in which the hidden tests were put back. Clearing
them (`ClearHiddenTests`) is not enough: the traceback of a failing hidden assert quotes its line and the
lines around it. `HideHiddenTestTracebacks` cuts such tracebacks down to the error's name and message.
"""

from __future__ import annotations

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

__all__ = ["HideHiddenTestTracebacks"]


class HideHiddenTestTracebacks(NbGraderPreprocessor):
    """Replace the traceback of an error in a cell holding hidden tests by one line `Name: message`."""

    begin_test_delimeter = Unicode("BEGIN HIDDEN TESTS", help="Marks the start of hidden tests").tag(config=True)

    def preprocess_cell(
        self, cell: NotebookNode, resources: ResourcesDict, cell_index: int
    ) -> tuple[NotebookNode, ResourcesDict]:
        if cell.cell_type == "code" and self.begin_test_delimeter in cell.source:
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"\x1b[0;31m{output.ename}\x1b[0m: {output.evalue}"]
        return cell, resources
