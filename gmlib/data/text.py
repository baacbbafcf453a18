"""Text corpora that ship with every CPython install, for the character-level models of lesson 04 (no downloads).

    load_corpus("stdlib-docs")     ~140 kB (Python 3.11): the docstrings of a fixed list of pure-Python stdlib modules
    load_corpus("zen")             ~0.8 kB: the Zen of Python (the `this` module, decoded from rot13)

The docstrings are read at run time (`inspect.getdoc`: dedented), in a fixed order: for each module of
`STDLIB_DOC_MODULES`, the module's docstring, then each public class or function defined in it (sorted by name)
followed by its public methods (sorted), each piece preceded by a header line like "json.dumps:". The text is
reduced to printable ASCII and newlines (tabs become four spaces, other characters are dropped), so the
vocabulary has at most 96 symbols. The exact text depends on the Python version (docstrings change between
releases); it is the same on every machine with the same version. Python run with -OO strips docstrings: then
`load_corpus` raises instead of returning an empty text.
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import importlib
import inspect
import io
import string

__all__ = ["TEXT_CORPORA", "STDLIB_DOC_MODULES", "load_corpus"]

TEXT_CORPORA: tuple[str, ...] = ("stdlib-docs", "zen")
STDLIB_DOC_MODULES: tuple[str, ...] = (
    "argparse", "calendar", "collections", "csv", "dataclasses", "datetime", "difflib", "enum", "fractions",
    "functools", "heapq", "json", "logging", "pathlib", "random", "shutil", "statistics", "string", "textwrap",
)  # fmt: skip
_ALLOWED = set(string.printable) - set("\t\r\x0b\x0c")


def _clean(text: str) -> str:
    text = text.replace("\t", "    ")
    return "".join(ch for ch in text if ch in _ALLOWED)


def _docstrings(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    pieces = []
    doc = inspect.getdoc(module)
    if doc:
        pieces.append(f"{module_name}:\n{doc}")
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        doc = inspect.getdoc(obj)
        if doc:
            pieces.append(f"{module_name}.{name}:\n{doc}")
        if inspect.isclass(obj):
            for attr, member in sorted(vars(obj).items()):
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                doc = inspect.getdoc(member)
                if doc:
                    pieces.append(f"{module_name}.{name}.{attr}:\n{doc}")
    return pieces


@functools.cache
def load_corpus(name: str = "stdlib-docs") -> str:
    """The text of a corpus in `TEXT_CORPORA` (a str of printable ASCII and newlines; see the module docstring)."""
    if name == "zen":
        with contextlib.redirect_stdout(io.StringIO()):  # `import this` prints the Zen the first time
            import this
        return _clean(codecs.decode(this.s, "rot13")) + "\n"
    if name == "stdlib-docs":
        text = _clean("\n\n".join(p for m in STDLIB_DOC_MODULES for p in _docstrings(m))) + "\n"
        if len(text) < 10_000:
            raise RuntimeError("the stdlib docstrings are missing (is Python running with -OO?)")
        return text
    raise ValueError(f"unknown corpus {name!r}; choose one of {', '.join(map(repr, TEXT_CORPORA))}")
