"""Checks used by the lessons' visible and hidden tests."""

from .checks import check_close, check_finite, check_grad, check_scalar, check_shape, check_tensor, fail

__all__ = ["check_close", "check_finite", "check_grad", "check_scalar", "check_shape", "check_tensor", "fail"]
