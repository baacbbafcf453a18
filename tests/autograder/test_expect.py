"""autograder.expect (inside the kernel: values to plain JSON) and autograder.expectations (outside: comparison).

The comparison is checked on notebooks as the grader sees them, written to disk and read back with nbformat,
because that is where exported objects come back as NotebookNode rather than dict.
"""

from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook, new_output

from autograder.expect import MIME, to_plain
from autograder.expectations import collect, compare


def record_of(name: str, value, rtol: float = 1e-5, atol: float = 1e-8) -> dict:
    return {"name": name, "value": to_plain(value), "rtol": rtol, "atol": atol}


def exported(*records: dict) -> list[dict]:
    """`records` shown as a kernel shows them, in a notebook saved and read back; collected as the grader does."""
    cell = new_code_cell("...")
    cell.outputs = [new_output("display_data", data={MIME: r, "text/plain": "<value>"}) for r in records]
    cell.outputs.append(new_output("stream", name="stdout", text="visible tests passed\n"))
    nb = nbformat.reads(nbformat.writes(new_notebook(cells=[cell])), as_version=4)
    found = collect(nb.cells[0])
    assert [o.output_type for o in nb.cells[0].outputs] == ["stream"]  # the exports are taken out of the outputs
    return found


def solution(*records: dict) -> list[dict]:
    """The solution's records as the grader stores them (a JSON file)."""
    return json.loads(json.dumps(list(records)))


def test_to_plain_keeps_exact_types_and_describes_arrays():
    """Are numbers, strings, lists and dicts kept, tensors and arrays turned into shape, dtype and values, and
    anything else (a float subclass with a doctored __eq__, a set) refused?"""
    assert to_plain({"a": [1, 2.5, True, None, "x"], "b": (3,)}) == {"a": [1, 2.5, True, None, "x"], "b": [3]}
    assert to_plain(torch.tensor([[1.0, 2.0]])) == {"shape": [1, 2], "dtype": "float32", "values": [1.0, 2.0]}
    assert to_plain(np.arange(3, dtype=np.int64)) == {"shape": [3], "dtype": "int64", "values": [0, 1, 2]}
    assert to_plain(np.float64(0.5)) == 0.5 and to_plain(torch.Size([2, 3])) == [2, 3]
    assert to_plain(float("nan")) == {"float": "nan"}
    assert to_plain(torch.tensor([float("inf")]))["values"] == [{"float": "inf"}]

    class Anything(float):
        def __eq__(self, other):
            return True

    for bad in (Anything(1.0), {1, 2}, {1: "a"}, object()):
        with pytest.raises(TypeError):
            to_plain(bad)
    with pytest.raises(ValueError, match="too many"):
        to_plain(torch.zeros(100_001))


def test_values_read_back_from_a_notebook_match_the_solution():
    """Does a cell whose exports equal the solution's (tensors, dicts, lists, floats within tolerance), read back
    from a saved notebook, pass the comparison?"""
    values = {"kl": torch.tensor([0.5, 1.25]), "stats": {"mean": 0.1, "n": 3}, "path": [[0.0, 1.0]], "ok": True}
    expected = solution(*(record_of(k, v, atol=1e-6) for k, v in values.items()))
    got = exported(*(record_of(k, v) for k, v in values.items()))
    assert compare(expected, got) == []
    nearly = dict(values, kl=torch.tensor([0.5 + 5e-7, 1.25]), stats={"mean": 0.1 + 5e-7, "n": 3})
    assert compare(expected, exported(*(record_of(k, v) for k, v in nearly.items()))) == []


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (torch.tensor([0.5, 1.3]), "differs from the expected value at 1 of 2 positions"),
        (torch.tensor([0.5, 1.25], dtype=torch.float64), "has dtype float64, not the expected dtype"),
        (torch.tensor([[0.5, 1.25]]), "has shape (1, 2), not the expected shape"),
        ([0.5, 1.25], "has type list, not the expected type"),
        (torch.tensor([0.5, float("nan")]), "differs from the expected value at 1 of 2 positions"),
    ],
)
def test_a_different_value_fails_and_says_how_without_showing_it(value, why):
    """Is a value of another dtype, shape, type or content named as such, without the expected value?"""
    expected = solution(record_of("kl", torch.tensor([0.5, 1.25]), atol=1e-6))
    assert compare(expected, exported(record_of("kl", value))) == [f"hidden check 'kl': the value {why}"]


def test_missing_repeated_and_unknown_exports_fail():
    """Is a value never exported (the test stopped, or the cell was skipped), exported twice, or under a name the
    solution never used, each a failure; and are a tolerance or a type claimed by the student ignored?"""
    expected = solution(record_of("a", 1.0), record_of("b", 2))
    assert compare(expected, exported()) == [
        "hidden check 'a': no value was produced (the test stopped before it)",
        "hidden check 'b': no value was produced (the test stopped before it)",
    ]
    twice = compare(expected, exported(record_of("a", 1.0), record_of("a", 1.0), record_of("b", 2)))
    assert twice == ["hidden check 'a': a value was given 2 times"]
    extra = compare(expected, exported(record_of("a", 1.0), record_of("b", 2), record_of("c", 0)))
    assert extra == ["values exported under unknown names: c"]
    loose = compare(expected, exported(record_of("a", 1.5, rtol=1.0, atol=1.0), record_of("b", 2)))
    assert loose == ["hidden check 'a': the value differs from the expected value"]
    assert compare(expected, exported(record_of("a", 1, atol=0.0), record_of("b", 2.0))) == []  # JSON: 1 == 1.0
    assert compare(solution(record_of("t", True)), exported(record_of("t", 1))) == [
        "hidden check 't': the value has type int, not the expected type"
    ]


def _graded(source: str, grade_id: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": 1,
                                 "schema_version": 3, "solution": False, "task": False}  # fmt: skip
    return cell


@pytest.mark.slow
def test_recording_keeps_plain_values_and_refuses_a_solution_that_would_lose_points(tmp_path):
    """Does recording the solution's run keep each graded cell's exports as plain JSON (a tensor included), and
    refuse a solution whose graded cell writes to stderr (nbgrader would score it 0, a warning is enough)?"""
    from autograder.expectations import record
    from autograder.settings import nbgrader_config

    export = "import torch\nfrom autograder.expect import expect\nexpect('t', torch.arange(3.0))\n"
    nb = new_notebook(cells=[_graded(export + "expect('n', 2)\n", "test_a")])
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "good.ipynb")
    config = nbgrader_config(tmp_path, sandbox=False)
    found = record(tmp_path / "good.ipynb", config)
    assert found == {"test_a": [
        {"name": "t", "value": {"shape": [3], "dtype": "float32", "values": [0.0, 1.0, 2.0]}, "rtol": 1e-5, "atol": 1e-8},
        {"name": "n", "value": 2, "rtol": 1e-5, "atol": 1e-8},
    ]}  # fmt: skip
    assert type(found["test_a"][0]["value"]) is dict
    assert compare(found["test_a"], exported(record_of("t", torch.arange(3.0)), record_of("n", 2))) == []

    nb.cells.append(_graded(export.replace("'t'", "'w'") + "import warnings\nwarnings.warn('careful')\n", "test_b"))
    nbformat.write(nb, tmp_path / "warns.ipynb")
    with pytest.raises(RuntimeError, match="test_b: wrote to stderr: .*careful"):
        record(tmp_path / "warns.ipynb", config)
