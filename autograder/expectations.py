"""The trusted half of `autograder.expect`: values recorded from the solution, compared outside the kernel.

`record(source_nb, config)` runs the lesson's source notebook (solutions and hidden tests) once, the way a
submission is run, and keeps each graded cell's exported values with their tolerances. The preprocessor
`CheckExpectations` runs in nbgrader's autograde right after execution: it takes the exported values out of
every cell and fails a graded cell (an error output, so nbgrader scores it 0) when one of its values is missing,
repeated, unknown, of another type or shape, or not close to the solution's. The message names the check but
never shows the expected value or the hidden test.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader import utils as nbutils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

from .expect import MIME

__all__ = ["CheckExpectations", "collect", "compare", "record", "uses_expect"]


def uses_expect(nb: NotebookNode) -> bool:
    """Does any graded cell of the (source) notebook export values?"""
    return any(nbutils.is_grade(c) and "expect(" in c.source for c in nb.cells)


def collect(cell: NotebookNode, remove: bool = True) -> list[dict]:
    """The records exported in a cell's outputs (taken out of the outputs when `remove`)."""
    found, kept = [], []
    for out in cell.get("outputs", []):
        data = out.get("data", {}) if out.get("output_type") in ("display_data", "execute_result") else {}
        if MIME in data:  # as plain JSON data: a notebook read back holds NotebookNode, not dict, for objects
            found.append(json.loads(json.dumps(data[MIME])))
        else:
            kept.append(out)
    if remove and cell.get("cell_type") == "code":
        cell.outputs = kept
    return found


def _differs(exp: Any, got: Any, rtol: float, atol: float) -> str:
    """'' when `got` matches `exp`; else what is wrong (without the expected value)."""
    if type(got) is not type(exp):
        if type(exp) is int and type(got) is float or type(exp) is float and type(got) is int:
            pass  # JSON does not keep 1.0 apart from 1; the tolerance decides
        else:
            return f"has type {type(got).__name__}, not the expected type"
    if isinstance(exp, dict) and set(exp) == {"shape", "dtype", "values"}:
        if set(got) != set(exp):
            return "is not an array"
        if got["shape"] != exp["shape"]:
            return f"has shape {tuple(got['shape'])}, not the expected shape"
        if got["dtype"] != exp["dtype"]:
            return f"has dtype {got['dtype']}, not the expected dtype"
        return _differs(exp["values"], got["values"], rtol, atol)
    if isinstance(exp, dict):
        if set(got) != set(exp):
            return "has other keys than expected"
        return next((f"[{k!r}] {w}" for k in exp if (w := _differs(exp[k], got[k], rtol, atol))), "")
    if isinstance(exp, list):
        if len(got) != len(exp):
            return f"has {len(got)} items, not the expected number"
        bad = [i for i, (e, g) in enumerate(zip(exp, got, strict=True)) if _differs(e, g, rtol, atol)]
        return f"differs from the expected value at {len(bad)} of {len(exp)} positions" if bad else ""
    if type(exp) in (int, float) and type(exp) is not bool:
        ok = math.isclose(float(got), float(exp), rel_tol=rtol, abs_tol=atol)
        return "" if ok else "differs from the expected value"
    return "" if got == exp else "differs from the expected value"


def compare(expected: list[dict], got: list[dict]) -> list[str]:
    """Why the exported values `got` of one cell do not match the solution's `expected` ([] if they do)."""
    problems = []
    names = [g.get("name") if isinstance(g, dict) else None for g in got]
    for exp in expected:
        name = exp["name"]
        mine = [g for g in got if isinstance(g, dict) and g.get("name") == name]
        if not mine:
            problems.append(f"hidden check {name!r}: no value was produced (the test stopped before it)")
        elif len(mine) > 1:
            problems.append(f"hidden check {name!r}: a value was given {len(mine)} times")
        elif why := _differs(exp["value"], mine[0].get("value"), exp["rtol"], exp["atol"]):
            problems.append(f"hidden check {name!r}: the value {why}")
    unknown = sorted({str(n) for n in names} - {e["name"] for e in expected})
    if unknown:
        problems.append(f"values exported under unknown names: {', '.join(unknown)}")
    return problems


class CheckExpectations(NbGraderPreprocessor):
    """Compare each graded cell's exported values with the solution's (file `expectations_file`)."""

    expectations_file = Unicode("", help="JSON: grade_id -> records of the solution's run").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict):
        expected = json.loads(Path(self.expectations_file).read_text()) if self.expectations_file else {}
        for cell in nb.cells:
            got = collect(cell)
            gid = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
            if cell.cell_type != "code" or not nbutils.is_grade(cell) or gid not in expected:
                continue
            problems = compare(expected[gid], got)
            if problems and not any(o.output_type == "error" for o in cell.outputs):
                text = "; ".join(problems)
                cell.outputs.append(
                    NotebookNode(output_type="error", ename="HiddenCheckFailed", evalue=text,
                                 traceback=[f"HiddenCheckFailed: {text}"])
                )  # fmt: skip
        return nb, resources


def record(source: Path, execute_config) -> dict[str, list[dict]]:
    """Run the source notebook (solution + hidden tests) and keep each graded cell's exported values."""
    from .execute import GradingExecute

    nb = nbformat.read(source, as_version=4)
    with tempfile.TemporaryDirectory(prefix="gm-solution-") as tmp:
        ex = GradingExecute(config=execute_config)
        nb, _ = ex.preprocess(nb, {"metadata": {"path": tmp}})
    found, broken = {}, []
    for cell in nb.cells:
        if not nbutils.is_grade(cell) or cell.cell_type != "code":
            continue
        gid = cell.metadata.nbgrader["grade_id"]
        errors = [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]
        # nbgrader scores a graded cell that wrote to stderr 0 (a warning is enough), so the solution must not
        errors += [f"wrote to stderr: {o.text.strip()[:300]}" for o in cell.outputs
                   if o.output_type == "stream" and o.name == "stderr"]  # fmt: skip
        if errors:
            broken.append(f"{gid}: {errors[0]}")
        records = collect(cell, remove=False)
        if records:
            found[gid] = [{"name": r["name"], "value": r["value"], "rtol": r["rtol"], "atol": r["atol"]} for r in records]
    if broken:
        raise RuntimeError(f"{source}: the solution fails its own graded cells: {'; '.join(broken)}")
    return found
