"""Feedback without the hidden tests.

nbgrader builds feedback from the autograded notebook, in which the hidden tests were put back. Clearing
them (`ClearHiddenTests`) is not enough: the traceback of a failing hidden assert quotes its line and the
lines around it. `HideHiddenTestTracebacks` cuts such tracebacks down to the error's name and message.

The student's own code runs in the same kernel as the hidden tests and can quote them on purpose (`print(In)`
in a later cell, an exception message built from the calling frame's source). `RedactHiddenTests` removes
every output line, in every cell, that quotes a line of a hidden test (as written, or escaped as a Python
repr, JSON or HTML would). An encoded copy (base64, an image) still gets through; what no output can carry
is the expected values of hidden checks that use autograder.expect: they never enter the kernel.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

__all__ = ["HideHiddenTestTracebacks", "RedactHiddenTests", "hidden_lines"]

REDACTED = "[output removed: it quoted a hidden test]"
MIN_LINE = 12  # shorter hidden lines (`else:`, `import torch`) say nothing and occur everywhere


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


def hidden_lines(sources: list[str], begin: str = "BEGIN HIDDEN TESTS", end: str = "END HIDDEN TESTS") -> set[str]:
    """The distinctive lines of the hidden-test regions of `sources` (stripped, not found outside them)."""
    hidden, visible = set(), set()
    for source in sources:
        inside = False
        for line in source.splitlines():
            if begin in line or end in line:
                inside = begin in line
                continue
            (hidden if inside else visible).add(line.strip())
    return {line for line in hidden - visible if len(line) >= MIN_LINE}


def _variants(line: str) -> set[str]:
    """`line` as it appears printed raw, inside a Python repr or JSON string, or in HTML."""
    forms = {line, line.replace("\\", "\\\\"), json.dumps(line)[1:-1], repr(line)[1:-1]}
    return forms | {html.escape(f) for f in forms} | {html.escape(f, quote=False) for f in forms}


class RedactHiddenTests(NbGraderPreprocessor):
    """Replace each output line that quotes a hidden test line (in any cell) by a notice."""

    begin_test_delimeter = Unicode("BEGIN HIDDEN TESTS", help="Marks the start of hidden tests").tag(config=True)
    end_test_delimeter = Unicode("END HIDDEN TESTS", help="Marks the end of hidden tests").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        lines = hidden_lines([c.source for c in nb.cells], self.begin_test_delimeter, self.end_test_delimeter)
        if not lines:
            return nb, resources
        delimiters = {self.begin_test_delimeter, self.end_test_delimeter}
        forms = sorted({f for line in lines | delimiters for f in _variants(line)}, key=len, reverse=True)
        pattern = re.compile("|".join(map(re.escape, forms)))

        def clean(value: Any) -> Any:
            if isinstance(value, str):
                if not pattern.search(value):
                    return value
                return "\n".join(REDACTED if pattern.search(part) else part for part in value.split("\n"))
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value

        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [from_dict(clean(o)) for o in cell.get("outputs", [])]  # NotebookNodes all the way down
        return nb, resources
