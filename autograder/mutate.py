"""How strong are a lesson's tests? Plant plausible mistakes in each solution and see which the tests miss.

    python -m autograder mutate 02_vae [--exercise 02_gaussian_kl] [--max-per-exercise 12] [--json out.json]

Each answer cell's solution (between ### BEGIN SOLUTION and ### END SOLUTION) is mutated one change at a time:
flip a sign, drop a term of a sum, swap an operator (+/-, *, /, **, comparisons), change a reduction axis/dim,
sum <-> mean, off-by-one in an index or slice bound. A mutant is *caught* when a graded test cell of its
exercise would lose points (an error, output on stderr, or a value exported with autograder.expect that
differs from the solution's). The notebook runs once, in the grading sandbox; after each exercise's own tests,
its mutants are run (mutant answer, then its tests), then the solution is restored, so the cost is one run
plus the mutants' tests. Surviving mutants are listed: either a gap in the tests or an equivalent change.
"""

from __future__ import annotations

import ast
import copy
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader import utils as nbutils

from .course import source_notebooks
from .expectations import collect, compare
from .settings import nbgrader_config

__all__ = ["mutants", "mutation_report", "format_report"]

REDUCTIONS = {"sum", "mean", "max", "min", "amax", "amin", "prod", "softmax", "log_softmax", "logsumexp", "cumsum",
              "std", "var", "norm", "argmax", "argmin", "flatten", "squeeze", "unsqueeze", "diff", "cat", "stack",
              "linspace", "mT", "transpose", "all", "any", "count_nonzero"}  # fmt: skip
SWAP_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
            ast.FloorDiv: ast.Div, ast.MatMult: ast.Mult}  # fmt: skip
SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.FloorDiv: "//", ast.MatMult: "@",
          ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}  # fmt: skip


def _solution_lines(source: str) -> tuple[int, int]:
    lines = source.splitlines()
    begin = next((i for i, line in enumerate(lines) if "BEGIN SOLUTION" in line), -1)
    end = next((i for i, line in enumerate(lines) if "END SOLUTION" in line), len(lines))
    return begin + 2, end  # 1-based, inclusive, the lines strictly between the markers


def _int_const(node) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _int_const(node.operand) is not None:
        return -_int_const(node.operand)
    return None


def _other_dims(k: int) -> list[int]:
    return [0] if k == -1 else ([1, -1] if k == 0 else [k - 1, -1] if k > 0 else [k + 1])


def _edits(node: ast.AST) -> list[tuple[str, str, Callable[[ast.AST], ast.AST | None]]]:
    """(kind, description, edit) for each mutation of `node`; an edit changes the node in place or returns a
    replacement."""
    found = []
    seg = ast.unparse(node) if isinstance(node, ast.expr) else ""
    short = seg if len(seg) <= 50 else seg[:47] + "..."
    if isinstance(node, ast.BinOp) and type(node.op) in SWAP_BIN:
        new = SWAP_BIN[type(node.op)]
        found.append(("swap operator", f"{SYMBOL[type(node.op)]} -> {SYMBOL[new]} in `{short}`",
                      lambda n, new=new: setattr(n, "op", new()) or n))  # fmt: skip
        if isinstance(node.op, ast.Add | ast.Sub):
            found.append(("drop a term", f"drop `{ast.unparse(node.right)}` from `{short}`", lambda n: n.left))
            found.append(("drop a term", f"drop `{ast.unparse(node.left)}` from `{short}`",
                          lambda n: n.right if isinstance(n.op, ast.Add) else ast.UnaryOp(ast.USub(), n.right)))  # fmt: skip
        if isinstance(node.op, ast.Mult | ast.Div):
            found.append(("drop a term", f"drop the factor `{ast.unparse(node.right)}` in `{short}`", lambda n: n.left))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _int_const(node) is None:
        found.append(("flip a sign", f"`{short}` -> `{ast.unparse(node.operand)}`", lambda n: n.operand))
    if isinstance(node, ast.Return) and node.value is not None:
        found.append(("flip a sign", f"return the negative of `{ast.unparse(node.value)[:40]}`",
                      lambda n: setattr(n, "value", ast.UnaryOp(ast.USub(), n.value)) or n))  # fmt: skip
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAP_CMP:
        new = SWAP_CMP[type(node.ops[0])]
        found.append(("swap operator", f"{SYMBOL[type(node.ops[0])]} -> {SYMBOL[new]} in `{short}`",
                      lambda n, new=new: setattr(n, "ops", [new()]) or n))  # fmt: skip
    if isinstance(node, ast.Call):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for i, kw in enumerate(node.keywords):
            k = _int_const(kw.value)
            if kw.arg in ("dim", "axis") and k is not None:
                for other in _other_dims(k):
                    found.append(("reduction axis", f"{name}({kw.arg}={k}) -> {kw.arg}={other}",
                                  lambda n, i=i, o=other: _set_kw(n, i, o)))  # fmt: skip
        if name in REDUCTIONS:
            for i, arg in enumerate(node.args):
                k = _int_const(arg)
                if k is not None and not (name == "linspace" and i < 2):
                    for other in _other_dims(k) if name != "linspace" else [k - 1, k + 1]:
                        found.append(("reduction axis", f"{name}(..{k}..) -> {other}",
                                      lambda n, i=i, o=other: _set_arg(n, i, o)))  # fmt: skip
        if name in ("range", "arange", "linspace", "randn", "zeros", "ones"):
            for i, arg in enumerate(node.args):
                if isinstance(arg, ast.Name):
                    for op, sign in ((ast.Sub, "-"), (ast.Add, "+")):
                        found.append(("off-by-one", f"{name}(.., {arg.id} {sign} 1, ..)",
                                      lambda n, i=i, op=op: _set_arg(n, i, ast.BinOp(n.args[i], op(),
                                                                                     ast.Constant(1)))))  # fmt: skip
        if isinstance(node.func, ast.Attribute) and name in ("sum", "mean"):
            swap = "mean" if name == "sum" else "sum"
            found.append(("sum/mean", f".{name}(...) -> .{swap}(...) in `{short}`",
                          lambda n, s=swap: setattr(n.func, "attr", s) or n))  # fmt: skip
    if isinstance(node, ast.Subscript):
        idx = node.slice
        k = _int_const(idx)
        if k is not None:
            for other in (k + 1, k - 1):
                found.append(("off-by-one", f"index [{k}] -> [{other}] in `{short}`", lambda n, o=other: _set_slice(n, o)))
        if isinstance(idx, ast.Slice):
            for part in ("lower", "upper"):
                k = _int_const(getattr(idx, part)) if getattr(idx, part) is not None else None
                if k is not None:
                    for other in (k + 1, k - 1):
                        found.append(("off-by-one", f"slice {part} bound {k} -> {other} in `{short}`",
                                      lambda n, p=part, o=other: setattr(n.slice, p, ast.Constant(o)) or n))  # fmt: skip
    return found


def _set_kw(node, i, value):
    node.keywords[i].value = ast.Constant(value)
    return node


def _set_arg(node, i, value):
    node.args[i] = value if isinstance(value, ast.AST) else ast.Constant(value)
    return node


def _set_slice(node, value):
    node.slice = ast.Constant(value)
    return node


def mutants(source: str, max_count: int | None = None) -> list[dict]:
    """Mutants of the solution region of an answer cell: [{"kind", "line", "description", "source"}]."""
    first, last = _solution_lines(source)
    tree = ast.parse(source)
    original = ast.unparse(tree)
    sites = [n for n in ast.walk(tree) if first <= getattr(n, "lineno", 0) <= last]
    order = {id(n): i for i, n in enumerate(ast.walk(tree))}
    found, seen = [], {original}
    for node in sites:
        for kind, description, edit in _edits(node):
            clone = copy.deepcopy(tree)
            target = next(n for i, n in enumerate(ast.walk(clone)) if i == order[id(node)])
            replacement = edit(target)
            if replacement is not target:
                _replace(clone, target, replacement)
            try:
                text = ast.unparse(ast.fix_missing_locations(clone))
                compile(text, "<mutant>", "exec")
            except (SyntaxError, ValueError, TypeError):
                continue
            if text not in seen:
                seen.add(text)
                found.append({"kind": kind, "line": node.lineno, "description": description, "source": text})
    if max_count is not None and len(found) > max_count:  # round-robin over kinds, in source order
        by_kind: dict[str, list[dict]] = {}
        for m in found:
            by_kind.setdefault(m["kind"], []).append(m)
        picked = []
        while len(picked) < max_count:
            for group in by_kind.values():
                if group and len(picked) < max_count:
                    picked.append(group.pop(0))
        found = sorted(picked, key=lambda m: m["line"])
    return found


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return


def _failed(cell: NotebookNode, expected: list[dict] | None) -> str:
    """Why a graded test cell loses its points ('' if it would keep them)."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {str(out.get('evalue'))[:120]}"
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return "wrote to stderr"
    if expected:
        problems = compare(expected, collect(cell, remove=False))
        if problems:
            return problems[0]
    return ""


def _plan(nb: NotebookNode, only: list[str] | None, max_per: int) -> tuple[list[NotebookNode], dict]:
    """The cells to run: the notebook in order, each exercise's mutant blocks after its own tests."""
    cells, exercises, current = [], {}, None
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if nbutils.is_solution(cell) and not nbutils.is_grade(cell) and cell.cell_type == "code":
            current = meta["grade_id"] if (not only or meta["grade_id"] in only) else None
            if current:
                exercises[current] = {"answer": cell, "tests": [], "mutants": mutants(cell.source, max_per)}
        elif nbutils.is_solution(cell):
            current = None
        elif nbutils.is_grade(cell) and current:
            exercises[current]["tests"].append(cell)
        cells.append(copy.deepcopy(cell))
        if current and nbutils.is_grade(cell) and cell is _last_test(nb, cell):
            cells += _blocks(current, exercises[current])
    return cells, exercises


def _last_test(nb: NotebookNode, cell: NotebookNode) -> NotebookNode:
    """The last graded cell of the run of graded cells that `cell` belongs to."""
    i = next(i for i, c in enumerate(nb.cells) if c is cell)
    while i + 1 < len(nb.cells) and nbutils.is_grade(nb.cells[i + 1]) and not nbutils.is_solution(nb.cells[i + 1]):
        i += 1
    return nb.cells[i]


def _blocks(gid: str, ex: dict) -> list[NotebookNode]:
    cells = []
    for m, mutant in enumerate(ex["mutants"]):
        cells.append(nbformat.v4.new_code_cell(mutant["source"], metadata={"gm_mutant": [gid, m, "answer"]}))
        for t, test in enumerate(ex["tests"]):
            cells.append(nbformat.v4.new_code_cell(test.source, metadata={"gm_mutant": [gid, m, "test", t]}))
        cells.append(nbformat.v4.new_code_cell(ex["answer"].source, metadata={"gm_mutant": [gid, m, "restore"]}))
    return cells


def mutation_report(
    lesson_dir: Path,
    *,
    exercises: list[str] | None = None,
    max_per_exercise: int = 12,
    timeout: int = 60,
    sandbox: bool = True,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Run every mutant of the lesson's answer cells; per exercise the caught and the surviving mutants."""
    from .execute import GradingExecute

    report = {"lesson": lesson_dir.name, "exercises": []}
    for path in source_notebooks(lesson_dir):
        nb = nbformat.read(path, as_version=4)
        cells, found = _plan(nb, exercises, max_per_exercise)
        count = sum(len(ex["mutants"]) for ex in found.values())
        progress(f"{path.name}: {count} mutant(s) of {len(found)} exercise(s)")
        run = nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)
        with tempfile.TemporaryDirectory(prefix="gm-mutate-") as tmp:
            config = nbgrader_config(tmp, timeout=timeout, sandbox=sandbox, notebook_timeout=max(900, 60 * count))
            ex_config = copy.deepcopy(config)
            ran, _ = GradingExecute(config=ex_config).preprocess(run, {"metadata": {"path": tmp}})
        originals = {c.metadata.nbgrader["grade_id"]: c for c in ran.cells
                     if "gm_mutant" not in c.metadata and nbutils.is_grade(c)}  # fmt: skip
        for gid, ex in found.items():
            base = {t.metadata.nbgrader["grade_id"]: collect(originals[t.metadata.nbgrader["grade_id"]], remove=False)
                    for t in ex["tests"]}  # fmt: skip
            broken = [f"{g}: {why}" for g in base if (why := _failed(originals[g], None))]
            entry = {"exercise": gid, "notebook": path.name, "tests": list(base), "mutants": [], "error": "; ".join(broken)}
            for m, mutant in enumerate(ex["mutants"]):
                tests = [c for c in ran.cells if c.metadata.get("gm_mutant", [None])[:3] == [gid, m, "test"]]
                reasons = [why for t, c in zip(ex["tests"], tests, strict=True)
                           if (why := _failed(c, base[t.metadata.nbgrader["grade_id"]] or None))]  # fmt: skip
                entry["mutants"].append({k: mutant[k] for k in ("kind", "line", "description")}
                                        | {"caught": bool(reasons), "by": reasons[0] if reasons else ""})  # fmt: skip
            entry["caught"] = sum(m["caught"] for m in entry["mutants"])
            entry["total"] = len(entry["mutants"])
            report["exercises"].append(entry)
    report["caught"] = sum(e["caught"] for e in report["exercises"])
    report["total"] = sum(e["total"] for e in report["exercises"])
    report["score"] = report["caught"] / report["total"] if report["total"] else None
    return report


def format_report(report: dict) -> str:
    """A plain-text table: per exercise caught/total, then each surviving mutant."""
    lines = [f"mutation testing of {report['lesson']}: {report['caught']}/{report['total']} mutants caught"
             + (f" ({100 * report['score']:.0f} %)" if report["score"] is not None else "")]  # fmt: skip
    for e in report["exercises"]:
        error = f"  [ERROR: {e['error']}]" if e["error"] else ""
        lines.append(f"  {e['exercise']}: {e['caught']}/{e['total']} caught{error}")
        for m in e["mutants"]:
            if not m["caught"]:
                lines.append(f"      survived (line {m['line']}, {m['kind']}): {m['description']}")
    return "\n".join(re.sub(r"\s+$", "", line) for line in lines)
