"""gmlib.grading: checks fail with messages a student can act on, and pass on correct values."""

from __future__ import annotations

import pytest
import torch

from gmlib.grading import check_close, check_finite, check_grad, check_scalar, check_shape, check_tensor


def test_check_shape_message_names_expected_and_actual_shapes():
    """Does a wrong shape report 'expected (B,) = (4,), got (4, 3)'-style details?"""
    with pytest.raises(AssertionError) as err:
        check_shape(torch.zeros(4, 3), (4,), name="gaussian_kl(mu, logvar)", dims="B")
    msg = str(err.value)
    assert "gaussian_kl(mu, logvar)" in msg and "(4, 3)" in msg and "(B,) = (4,)" in msg and "sum" in msg
    check_shape(torch.zeros(4), (4,))


def test_check_tensor_rejects_lookalikes():
    """Are lists, numpy arrays, tuples and tensor subclasses rejected with their type named?"""
    class Sneaky(torch.Tensor):
        pass

    for bad, word in [([1.0], "list"), ((torch.zeros(1), torch.zeros(1)), "tuple"),
                      (torch.zeros(2).numpy(), "ndarray"), (torch.zeros(2).as_subclass(Sneaky), "Sneaky")]:
        with pytest.raises(AssertionError, match=word):
            check_tensor(bad, "f(x)")


def test_check_close_reports_the_worst_entry():
    """Does a value mismatch name the index, both values and the hint?"""
    expected = torch.tensor([1.0, 2.0, 3.0])
    check_close(expected + 1e-7, expected)
    with pytest.raises(AssertionError) as err:
        check_close(torch.tensor([1.0, 2.5, 3.0]), expected, "f(x)", hint="check the sign")
    msg = str(err.value)
    assert "(1,)" in msg and "2.5" in msg and "expected 2" in msg and "check the sign" in msg


def test_check_finite_and_scalar():
    """Are nan values and non-scalar losses reported?"""
    with pytest.raises(AssertionError, match="non-finite"):
        check_finite(torch.tensor([1.0, float("nan")]))
    with pytest.raises(AssertionError, match="scalar"):
        check_scalar(torch.zeros(3), "loss")
    check_scalar(torch.tensor(1.0))


def test_check_grad_detects_a_detached_result():
    """Is a result computed through .detach() caught, and a differentiable one accepted?"""
    x = torch.randn(3, requires_grad=True)
    check_grad(x * 2, {"x": x})
    with pytest.raises(AssertionError, match="gradient"):
        check_grad(x.detach() * 2, {"x": x})
    y = torch.randn(3, requires_grad=True)
    with pytest.raises(AssertionError, match="`y`"):
        check_grad(x * 2 + y.detach(), {"x": x, "y": y})


def test_yours_or_reference_falls_back_on_a_stub_and_says_so(capsys):
    """Is the reference used (and named on stdout) while the student's function raises, and theirs once it works?"""
    from gmlib.grading import yours_or_reference

    def reference(x):
        return x + 1

    def stub(x):
        raise NotImplementedError()

    def wrong_shape(x):
        return x.sum()

    def trial(f):
        check_shape(f(torch.zeros(3)), (3,), "f(x)")

    assert yours_or_reference(stub, reference, trial) is reference
    assert yours_or_reference(wrong_shape, reference, trial) is reference
    out = capsys.readouterr()
    assert "NotImplementedError" in out.out and "expected" in out.out and out.err == ""
    assert yours_or_reference(reference, stub, trial, name="mine") is reference
    assert "mine: using yours." in capsys.readouterr().out
