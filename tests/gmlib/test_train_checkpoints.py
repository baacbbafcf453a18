"""fit, History, callbacks, FAST mode, and load_or_train's cache."""

from __future__ import annotations

import torch
from torch import nn

from gmlib.checkpoints import checkpoint_path, load_or_train
from gmlib.config import FAST_MAX_STEPS
from gmlib.train import History, fit


class Quadratic(nn.Module):
    """loss = mean (w - target)^2: fit must drive w to the target."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def loss(self, batch):
        (target,) = batch
        value = (self.w - target).pow(2).mean()
        return value, {"w0": self.w[0].item()}


def loader(n=64, batch=8):
    targets = torch.tensor([1.0, -2.0, 0.5]).repeat(n, 1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(targets), batch_size=batch)


def test_fit_minimises_the_loss_and_records_history():
    """Does fit reach the minimum of a quadratic and log one value per step and one mean per epoch?"""
    model = Quadratic()
    history = fit(model, loader(), epochs=30, lr=0.1, device="cpu", progress=False)
    torch.testing.assert_close(model.w.detach(), torch.tensor([1.0, -2.0, 0.5]), atol=1e-2, rtol=0)
    assert history.num_steps == 30 * 8 == len(history.steps["loss"]) == len(history.steps["w0"])
    assert len(history.epochs["loss"]) == 30
    assert history.steps["loss"][-1] < 1e-3 < history.steps["loss"][0]
    assert not model.training


def test_fit_calls_callbacks_and_respects_max_steps():
    """Are callbacks called once per step with (model, step, logs), and does max_steps stop training?"""
    seen = []
    fit(Quadratic(), loader(), epochs=10, max_steps=13, device="cpu", progress=False,
        callbacks=[lambda m, step, logs: seen.append((step, "loss" in logs))])
    assert seen == [(i, True) for i in range(1, 14)]


def test_max_seconds_stops_training():
    """Does fit stop once max_seconds of training time have passed, even with many epochs left?"""
    import time

    class Slow(Quadratic):
        def loss(self, batch):
            time.sleep(0.01)
            return super().loss(batch)

    history = fit(Slow(), loader(), epochs=1000, max_seconds=0.3, device="cpu", progress=False)
    assert 5 <= history.num_steps <= 40 and history.seconds < 1.0


def test_max_seconds_counts_on_the_given_clock():
    """Is the time budget read from `clock` (e.g. CPU time)? The clock ticks once per read: 0 at the start, then
    1, 2, 3, 4 before the first four steps, and 5 (the budget) stops the fifth."""
    ticks = iter(range(10_000))
    history = fit(Quadratic(), loader(), epochs=1000, max_seconds=5, clock=lambda: next(ticks), device="cpu",
                  progress=False)
    assert history.num_steps == 4


def test_fast_mode_caps_steps(monkeypatch):
    """Does GMLIB_FAST=1 cap the number of steps inside fit?"""
    monkeypatch.setenv("GMLIB_FAST", "1")
    history = fit(Quadratic(), loader(n=800), epochs=5, device="cpu", progress=False)
    assert history.num_steps == FAST_MAX_STEPS


def test_fit_with_custom_step_fn_and_optimizers():
    """Does a custom step_fn receive the optimisers it was given?"""
    model = Quadratic()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    got = []

    def step_fn(m, batch, optimizers):
        got.append(optimizers)
        optimizers[0].zero_grad()
        loss, _ = m.loss(batch)
        loss.backward()
        optimizers[0].step()
        return {"loss": loss.item()}

    fit(model, loader(), optimizers=[opt], step_fn=step_fn, max_steps=3, device="cpu", progress=False)
    assert len(got) == 3 and got[0][0] is opt


def test_fit_stops_on_a_non_finite_loss():
    """Is a nan loss reported clearly instead of silently corrupting the weights?"""
    class Bad(Quadratic):
        def loss(self, batch):
            return self.w.sum() * float("nan"), {}

    try:
        fit(Bad(), loader(), device="cpu", progress=False)
    except FloatingPointError as err:
        assert "not finite" in str(err)
    else:
        raise AssertionError("a nan loss was not reported")


def test_load_or_train_trains_once_then_loads():
    """Does load_or_train train on the first call and load identical weights (and history) on the second?"""
    calls = []

    def train(model):
        calls.append(1)
        return fit(model, loader(), epochs=3, lr=0.1, device="cpu", progress=False)

    first, h1 = load_or_train("quad", Quadratic(), train, config={"lr": 0.1})
    second, h2 = load_or_train("quad", Quadratic(), train, config={"lr": 0.1})
    assert calls == [1]
    torch.testing.assert_close(first.w, second.w)
    assert h2 is not None and h2.steps["loss"] == h1.steps["loss"]
    assert checkpoint_path("quad", Quadratic(), config={"lr": 0.1}).exists()
    load_or_train("quad", Quadratic(), train, config={"lr": 0.2})  # another config trains again
    assert calls == [1, 1]


def test_load_or_train_key_includes_fast_mode(monkeypatch):
    """Does a FAST-mode checkpoint never stand in for a full training run?"""
    full = checkpoint_path("m", Quadratic(), config={})
    monkeypatch.setenv("GMLIB_FAST", "1")
    assert checkpoint_path("m", Quadratic(), config={}) != full


def test_load_or_train_retrains_a_damaged_checkpoint():
    """Is a corrupt cache file replaced by retraining rather than crashing the lesson?"""
    path = checkpoint_path("quad", Quadratic(), config=None)
    path.write_bytes(b"not a checkpoint")
    calls = []
    model, _ = load_or_train("quad", Quadratic(), lambda m: calls.append(1) or History())
    assert calls == [1] and path.stat().st_size > 100
