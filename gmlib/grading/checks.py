"""Checks for exercise tests, with failure messages a student can act on.

Every check raises `AssertionError` (which nbgrader counts as a failed test) with a message that names the
function under test, what was expected and what came back, e.g.

    gaussian_kl(mu, logvar) returned shape (4, 3); expected (B,) = (4,)

Checks never print and never warn: nbgrader scores a test cell that writes to stderr as failed.
Values are checked with exact types (a torch.Tensor, not an object pretending to be one).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "check_tensor",
    "check_shape",
    "check_finite",
    "check_close",
    "check_scalar",
    "check_grad",
    "fail",
]

_TENSOR_TYPES = (torch.Tensor, nn.Parameter)


def fail(message: str) -> None:
    """Fail a test with `message` (an AssertionError without a long traceback chain)."""
    raise AssertionError(message)


def _fmt_shape(shape: Sequence[int]) -> str:
    shape = tuple(int(s) for s in shape)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _fmt_dims(dims: str | Sequence[str]) -> str:
    names = dims.split() if isinstance(dims, str) else list(dims)
    return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"


def check_tensor(value, name: str = "the result") -> Tensor:
    """Is `value` a real torch.Tensor? Returns it."""
    if type(value) not in _TENSOR_TYPES:
        fail(f"{name} should be a torch.Tensor, got {type(value).__name__}"
             + (" (did you return a tuple instead of one tensor?)" if isinstance(value, tuple) else ""))
    return value


def check_shape(value, expected: Sequence[int], name: str = "the result", dims: str | Sequence[str] | None = None) -> Tensor:
    """Is `value` a tensor of shape `expected`? `dims` names the axes for the message, e.g. "B d"."""
    value = check_tensor(value, name)
    expected = tuple(int(s) for s in expected)
    if tuple(value.shape) != expected:
        want = f"{_fmt_dims(dims)} = {_fmt_shape(expected)}" if dims else _fmt_shape(expected)
        hint = ""
        if value.numel() == 0 or value.dim() == len(expected) + 1:
            hint = " (did you forget to sum or average over one axis?)"
        elif value.dim() + 1 == len(expected) or value.dim() == 0:
            hint = " (did you reduce over one axis too many?)"
        fail(f"{name} returned shape {_fmt_shape(value.shape)}; expected {want}{hint}")
    return value


def check_finite(value, name: str = "the result") -> Tensor:
    """Are all entries of `value` finite (no nan or inf)?"""
    value = check_tensor(value, name)
    bad = ~torch.isfinite(value.detach())
    if bad.any():
        n = int(bad.sum())
        fail(f"{name} has {n} non-finite value(s) (nan or inf) out of {value.numel()}: check for log(0), "
             "division by zero or exp of a large number")
    return value


def check_scalar(value, name: str = "the result") -> Tensor:
    """Is `value` a 0-dimensional tensor (a scalar loss)?"""
    value = check_tensor(value, name)
    if value.dim() != 0:
        fail(f"{name} should be a scalar (shape ()), got shape {_fmt_shape(value.shape)}: reduce it with .mean() or .sum()")
    return value


def check_close(
    actual,
    expected: Tensor,
    name: str = "the result",
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str | None = None,
    dims: str | Sequence[str] | None = None,
) -> Tensor:
    """Does `actual` match `expected` (type, shape, finite values, then values within atol + rtol * |expected|)?"""
    expected = torch.as_tensor(expected)
    actual = check_shape(actual, expected.shape, name, dims)
    check_finite(actual, name)
    a = actual.detach().to(torch.float64).cpu()
    e = expected.detach().to(torch.float64).cpu()
    err = (a - e).abs()
    tol = atol + rtol * e.abs()
    if (err > tol).any():
        idx = int(torch.argmax(err - tol).item())
        where = tuple(int(i) for i in torch.unravel_index(torch.tensor(idx), a.shape)) if a.dim() else ()
        msg = (f"{name} has wrong values: at index {where} got {a.flatten()[idx].item():.6g}, expected "
               f"{e.flatten()[idx].item():.6g} (largest error {err.max().item():.3g})")
        fail(msg + (f". Hint: {hint}" if hint else ""))
    return actual


def check_grad(output: Tensor, inputs: dict[str, Tensor], name: str = "the result") -> None:
    """Does a gradient flow from `output` back to each named input (no detach, no .numpy() round trip)?"""
    output = check_tensor(output, name)
    if not output.requires_grad:
        fail(f"{name} does not depend differentiably on its inputs: no gradient can flow back "
             "(avoid .detach(), .item(), .numpy() and torch.no_grad() inside the function)")
    tensors = list(inputs.values())
    grads = torch.autograd.grad(output.sum(), tensors, allow_unused=True, retain_graph=True)
    for (arg, _), g in zip(inputs.items(), grads, strict=True):
        if g is None or not torch.any(g != 0):
            fail(f"no gradient flows from {name} to `{arg}`: the result must be computed from `{arg}` with torch ops")
