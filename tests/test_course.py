"""The course as a whole: every lesson ends the same way, and what lessons use from gmlib is documented.

Companion of test_course_index.py (the front page) and tests/autograder (generation and grading).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import nbformat
import pytest

from autograder.course import list_lessons

REPO = Path(__file__).resolve().parents[1]
LESSONS = list_lessons(REPO / "solutions")
FAST_TOTAL_BUDGET_S = 15 * 60  # all lessons in FAST mode, one after another: well inside CI's 90 minutes


def _source(name: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "solutions" / name / f"{name}.ipynb", as_version=4)


def _python(cell_source: str) -> str:
    """A code cell without IPython magics and shell escapes, so `ast` can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell_source.splitlines())


def gmlib_names_used(nb: nbformat.NotebookNode) -> set[str]:
    """Dotted names of gmlib objects a notebook imports or reaches through an imported gmlib module."""
    used: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(_python(cell.source))
        modules: dict[str, str] = {}  # local alias -> gmlib module path
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "gmlib":
                for alias in node.names:
                    used.add(f"{node.module}.{alias.name}")
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "gmlib":
                        used.add(alias.name)
                        modules[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or "gmlib"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                used.add(f"{modules[node.value.id]}.{node.attr}")
    return used


def resolve(dotted: str):
    """The object a dotted gmlib name refers to (module, then attributes)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def undocumented(names: set[str]) -> list[str]:
    """Names whose function, class or module has no docstring (constants and data need none)."""
    missing = []
    for name in sorted(names):
        obj = resolve(name)
        if (inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj)) and not (inspect.getdoc(obj) or "").strip():
            missing.append(name)
    return missing


@pytest.mark.parametrize("name", LESSONS)
def test_every_gmlib_name_a_lesson_uses_exists_and_is_documented(name):
    """Does every gmlib function, class and module a lesson uses exist, with a docstring a student can read?"""
    used = gmlib_names_used(_source(name))
    assert used, f"{name} uses nothing from gmlib?"
    assert undocumented(used) == [], f"{name}: document these gmlib names"


def test_the_documentation_check_can_fail(tmp_path, monkeypatch):
    """Is an undocumented function reached through a module alias reported by the check?"""
    (tmp_path / "gmlib_probe_mod.py").write_text('"""A module."""\ndef bare():\n    return 1\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    code = "%matplotlib inline\nfrom gmlib import viz\nviz.show_images"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    assert gmlib_names_used(nb) == {"gmlib.viz", "gmlib.viz.show_images"}
    assert undocumented({"gmlib_probe_mod.bare"}) == ["gmlib_probe_mod.bare"]
    assert undocumented({"gmlib_probe_mod"}) == []


@pytest.mark.parametrize("name", LESSONS)
def test_every_lesson_ends_with_a_summary_and_what_to_read_next(name):
    """Does the lesson's last markdown cell summarise it and point to reading and the next step?"""
    markdown = [c.source for c in _source(name).cells if c.cell_type == "markdown"]
    last = markdown[-1]
    assert re.match(r"#+ Summary", last.strip()), f"{name}: the last markdown cell should be '## Summary'"
    assert re.search(r"(?i)read|reference|paper", last), f"{name}: the summary should say what to read next"
    assert re.search(r"\b(19|20)\d\d\b", last), f"{name}: cite at least one paper or book (with its year)"


def test_lessons_fast_runs_were_measured_and_fit_in_ci():
    """Has every lesson a measured FAST run, and do all of them together stay well inside CI's time?"""
    rows = json.loads((REPO / "benchmarks" / "results" / "lessons.json").read_text())
    rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
    fast = {r["lesson"]: r for r in rows if r.get("mode") == "fast"}
    assert set(LESSONS) <= set(fast), f"run benchmarks/lesson_budget.py for {sorted(set(LESSONS) - set(fast))}"
    seconds = {n: fast[n].get("kernel_cpu_s") or fast[n]["wall_s"] for n in LESSONS}
    assert all(s <= 60 for s in seconds.values()), seconds
    assert sum(seconds.values()) <= FAST_TOTAL_BUDGET_S, seconds
