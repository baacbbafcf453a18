"""One contract for every model family (DESIGN.md): finite scalar loss with float logs, gradients reach the
parameters, sample shapes, reproducible samples with `generator=`, exact log_prob where the family has one,
and the device following the parameters."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch

from . import contract_cases
from .contract_cases.case import ContractCase


def all_cases() -> list[ContractCase]:
    cases = []
    for info in sorted(pkgutil.iter_modules(contract_cases.__path__), key=lambda m: m.name):
        if info.name != "case":
            cases.extend(importlib.import_module(f"{contract_cases.__name__}.{info.name}").CASES)
    return cases


CASES = all_cases()


def _first_tensor(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request) -> ContractCase:
    torch.manual_seed(0)
    return request.param


def test_loss_is_a_finite_scalar_and_trains_every_parameter(case):
    """Is loss(batch) a finite scalar with float logs, and does its gradient reach the trainable parameters?"""
    model = case.make_model()
    loss, logs = model.loss(case.make_batch())
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and torch.isfinite(loss)
    assert all(isinstance(v, float) for v in logs.values()), logs
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)


def test_sample_shape_and_reproducibility(case):
    """Does sample(n) return the documented shape, identical for equal generator seeds?"""
    model = case.make_model().eval()
    a = model.sample(4, generator=torch.Generator().manual_seed(7), **case.sample_kwargs)
    b = model.sample(4, generator=torch.Generator().manual_seed(7), **case.sample_kwargs)
    a = a[0] if isinstance(a, tuple) else a
    b = b[0] if isinstance(b, tuple) else b
    if isinstance(a, torch.Tensor):
        assert tuple(a.shape) == case.sample_shape and torch.isfinite(a.float()).all()
        torch.testing.assert_close(a, b)
    else:  # text models return strings
        assert len(a) == case.sample_shape[0] and a == b


def test_log_prob_is_exact_per_example(case):
    """Where the family has an exact likelihood, is log_prob(x) a finite (B,) tensor?"""
    if not case.has_log_prob:
        pytest.skip("no exact likelihood in this family")
    model = case.make_model().eval()
    x = case.log_prob_input() if case.log_prob_input else _first_tensor(case.make_batch())
    lp = model.log_prob(x)
    assert lp.shape == (len(x),) and torch.isfinite(lp).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_follows_the_parameters(case):
    """Moved to CUDA, do loss and samples run there without any global device setting?"""
    model = case.make_model().cuda()
    batch = case.make_batch()
    batch = tuple(t.cuda() for t in batch) if isinstance(batch, (tuple, list)) else batch.cuda()
    loss, _ = model.loss(batch)
    assert loss.device.type == "cuda"
    kwargs = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in case.sample_kwargs.items()}
    s = model.sample(4, **kwargs)  # sample_kwargs (labels, for instance) are built for n = 4
    s = s[0] if isinstance(s, tuple) else s
    if isinstance(s, torch.Tensor):
        assert s.device.type == "cuda"
