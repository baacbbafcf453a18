"""Hidden tests export values with `expect(name, value)`; the grader compares them OUTSIDE the kernel.

    from autograder.expect import expect
    expect("kl_sum", gaussian_kl(mu, logvar), atol=1e-6)

Inside the student's kernel `expect` only converts the value to plain JSON (numbers, strings, booleans,
None, lists and dicts of them; a tensor or array becomes {"shape", "dtype", "values"}) and shows it as a
display output of type MIME. The grader runs the source notebook once with the solutions, records the
values (and the tolerances, which are taken from the solution's run only) and, after running a student's
notebook, compares each graded cell's exported values with the solution's: a missing, repeated, unknown,
wrongly typed or different value fails the cell, whatever the kernel says. An object with a doctored
`__eq__`, or a patched torch.allclose, changes nothing there: the comparison is not made in the kernel.

This module must stay importable with the standard library alone (the kernel imports it in the sandbox).
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["expect", "to_plain", "MIME"]

MIME = "application/vnd.gm-grade.expect+json"
MAX_ITEMS = 100_000  # a value exported by a hidden test is small; a huge one is an error


def to_plain(value: Any) -> Any:
    """`value` as plain JSON data with exact types; TypeError for anything else."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if kind in (list, tuple):
        return [to_plain(v) for v in value]
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise TypeError("expect(): dict keys must be str")
        return {k: to_plain(v) for k, v in value.items()}
    module = getattr(kind, "__module__", "") or ""
    if module.startswith("torch") and kind.__name__ in ("Tensor", "Parameter"):
        t = value.detach().cpu()
        return _array(list(t.shape), str(t.dtype).removeprefix("torch."), t.flatten().tolist())
    if module.startswith("numpy") and kind.__name__ == "ndarray":
        return _array(list(value.shape), str(value.dtype), value.ravel().tolist())
    if module.startswith("numpy") and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return to_plain(value.item())
    if module.startswith("torch") and kind.__name__ == "Size":
        return [int(v) for v in value]
    if module.startswith("torch") and kind.__name__ == "dtype":
        return str(value).removeprefix("torch.")
    raise TypeError(f"expect(): cannot export a value of type {module}.{kind.__name__}")


def _array(shape: list[int], dtype: str, values: list) -> dict:
    if len(values) > MAX_ITEMS:
        raise ValueError(f"expect(): {len(values)} numbers is too many to export (at most {MAX_ITEMS})")
    plain = [v if type(v) is not float or math.isfinite(v) else {"float": repr(v)} for v in values]
    return {"shape": shape, "dtype": dtype, "values": plain}


def expect(name: str, value: Any, *, rtol: float = 1e-5, atol: float = 1e-8) -> None:
    """Export `value` under `name` for the grader to compare with the solution's (same name, same cell).

    rtol, atol: tolerances for numbers (only the solution run's are used).
    """
    if type(name) is not str or not name:
        raise TypeError("expect(): name must be a non-empty str")
    record = {"name": name, "value": to_plain(value), "rtol": float(rtol), "atol": float(atol)}
    text = json.dumps(record)
    try:
        from IPython.display import display
    except ImportError:  # outside a kernel (a plain script): nothing to show to
        return
    display({MIME: json.loads(text), "text/plain": f"<value {name!r} exported for grading>"}, raw=True)
