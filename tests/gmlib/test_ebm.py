"""The EBM's Langevin sampler against closed forms for a quadratic energy, the replay buffer's semantics, and
the model contract."""

from __future__ import annotations

import math

import pytest
import torch

from gmlib.models.ebm import (
    EBM,
    EBMConfig,
    ReplayBuffer,
    contrastive_divergence,
    energy_grid,
    from_textbook_step,
    langevin_sample,
    langevin_step,
    replay_draw,
    textbook_langevin_step,
)


def quadratic_energy(x: torch.Tensor) -> torch.Tensor:
    """E(x) = |x|^2 / 2, so exp(-E) is N(0, I) and grad E = x."""
    return 0.5 * x.flatten(1).pow(2).sum(dim=1)


def tiny_ebm(kind: str = "2d", **kw) -> EBM:
    torch.manual_seed(0)
    if kind == "2d":
        kw = {"hidden": (16,), **kw}
    else:
        kw = {"image_shape": (1, 8, 8), "channels": (4, 8), "step_size": 0.1, "noise_scale": 0.01, **kw}
    return EBM(EBMConfig(kind=kind, **{"num_steps": 3, "buffer_size": 50, **kw}))


# ------------------------------------------------------------------------------------------ Langevin dynamics
def test_langevin_step_without_noise_is_gradient_descent():
    """With noise 0, is one step x - step_size * grad E, i.e. (1 - step_size) x for the quadratic energy?"""
    x = torch.randn(5, 3)
    torch.testing.assert_close(langevin_step(x, quadratic_energy, 0.1, 0.0), 0.9 * x)


def test_noiseless_langevin_lowers_a_quadratic_energy_monotonically():
    """Does every noiseless step lower E(x) = |x|^2 / 2 for every chain, reaching the minimum at 0?"""
    x0 = 3 * torch.randn(8, 2)
    _, traj = langevin_sample(quadratic_energy, x0, 50, 0.1, 0.0, return_trajectory=True)
    energies = torch.stack([quadratic_energy(x) for x in traj])  # (T + 1, B)
    assert (energies[1:] < energies[:-1]).all()
    assert energies[-1].max() < 1e-3 * energies[0].max()


def test_langevin_step_uses_autograd_gradient_of_any_energy():
    """Is the noiseless step x - s * grad E for a non-quadratic energy (gradient by hand)?"""
    def energy(x):
        return (x.pow(4) - 2 * x.pow(2)).sum(dim=1)  # double well per coordinate, grad 4x^3 - 4x

    x = torch.randn(6, 2)
    torch.testing.assert_close(langevin_step(x, energy, 0.01, 0.0), x - 0.01 * (4 * x.pow(3) - 4 * x))


def test_textbook_langevin_samples_a_standard_normal():
    """With noise sqrt(2 * step) on E = |x|^2 / 2, do long chains have mean 0 and variance 1 / (1 - step / 2)
    (the discretised chain's exact stationary variance, -> 1 as step -> 0)?"""
    g = torch.Generator().manual_seed(0)
    step = 0.02
    x0 = 8 * torch.rand(20_000, 2, generator=g) - 4  # far from N(0, I)
    x = langevin_sample(quadratic_energy, x0, 400, step, math.sqrt(2 * step), generator=g)
    assert x.mean(0).abs().max() < 0.03
    var = x.var(0)
    torch.testing.assert_close(var, torch.full((2,), 1 / (1 - step / 2)), atol=0.04, rtol=0)
    torch.testing.assert_close(var, torch.ones(2), atol=0.05, rtol=0)


def test_langevin_sample_trajectory_and_generator():
    """Does the trajectory hold x0 then every state (T + 1, B, ...), ending at the returned x, and do equal
    generator seeds give equal chains?"""
    x0 = torch.randn(4, 1, 2, 2)
    run = lambda: langevin_sample(quadratic_energy, x0, 5, 0.1, 0.3,  # noqa: E731
                                  generator=torch.Generator().manual_seed(3), return_trajectory=True)
    (x, traj), (x2, _) = run(), run()
    assert traj.shape == (6, 4, 1, 2, 2)
    torch.testing.assert_close(traj[0], x0)
    torch.testing.assert_close(traj[-1], x)
    torch.testing.assert_close(x, x2)


def test_langevin_sample_clamps_to_the_box():
    """Are clamped chains inside [low, high] after every step?"""
    _, traj = langevin_sample(quadratic_energy, torch.rand(10, 4), 5, 0.1, 2.0, clamp=(0.0, 1.0),
                              generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert traj.min() >= 0 and traj.max() <= 1


def test_langevin_runs_under_no_grad():
    """Does sampling work inside torch.no_grad() (the gradient in x is still taken)?"""
    with torch.no_grad():
        x = langevin_step(torch.ones(2, 2), quadratic_energy, 0.5, 0.0)
    torch.testing.assert_close(x, torch.full((2, 2), 0.5))


def test_textbook_step_is_the_model_step_with_half_the_step_size():
    """Is x - eps/2 grad E + sqrt(eps) noise the same draw as langevin_step(x, E, eps / 2, sqrt(eps))?"""
    x = torch.randn(7, 3)
    a = textbook_langevin_step(x, quadratic_energy, 0.08, generator=torch.Generator().manual_seed(0))
    b = langevin_step(x, quadratic_energy, 0.04, math.sqrt(0.08), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)


def test_textbook_langevin_has_the_discretised_stationary_variance():
    """On E = (x - m)^2 / (2 s^2), does the textbook chain have mean m and the exact stationary variance
    s^2 / (1 - eps / (4 s^2)) of the discretised chain?"""
    m, s, eps = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0]), 0.05

    def energy(x):
        return ((x - m) ** 2 / (2 * s**2)).sum(dim=1)

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(20_000, 2)
    for _ in range(600):
        x = textbook_langevin_step(x, energy, eps, generator=g)
    torch.testing.assert_close(x.mean(0), m, atol=0.05, rtol=0)
    torch.testing.assert_close(x.var(0), s**2 / (1 - eps / (4 * s**2)), atol=0, rtol=0.04)


def test_from_textbook_step_adapts_checks_and_keeps_the_cache_key():
    """Does the adapter pass eps = 2 * step_size, refuse a decoupled noise scale, run inside an EBM, and give the
    model the wrapped function's cache key?"""
    calls = []

    def my_step(x, energy_fn, step_size, generator=None):
        calls.append(step_size)
        return textbook_langevin_step(x, energy_fn, step_size, generator=generator)

    step = from_textbook_step(my_step)
    x = torch.randn(4, 2)
    out = step(x, quadratic_energy, 0.01, math.sqrt(0.02), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, langevin_step(x, quadratic_energy, 0.01, math.sqrt(0.02),
                                                  generator=torch.Generator().manual_seed(0)))
    assert calls == [0.02]
    with pytest.raises(ValueError, match="noise_scale = sqrt"):
        step(x, quadratic_energy, 0.01, 0.005)
    cfg = EBMConfig(kind="2d", hidden=(8,), num_steps=2, buffer_size=10, step_size=0.01, noise_scale=math.sqrt(0.02))
    model = EBM(cfg, langevin_step_fn=step)
    model.sample(3, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 3
    assert model.cache_key() == EBM(cfg, langevin_step_fn=from_textbook_step(my_step)).cache_key()
    assert model.cache_key() != EBM(cfg, langevin_step_fn=from_textbook_step(textbook_langevin_step)).cache_key()


def test_langevin_sample_enables_gradients_for_an_injected_step():
    """Does a step that takes grad_x E with plain autograd work when sampling runs under torch.no_grad()?"""
    def plain_step(x, energy_fn, step_size, noise_scale, generator=None):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy_fn(x).sum(), x)
        return (x - step_size * grad).detach()

    with torch.no_grad():
        out = langevin_sample(quadratic_energy, torch.ones(2, 2), 1, 0.5, 0.0, step_fn=plain_step)
    torch.testing.assert_close(out, torch.full((2, 2), 0.5))


# ------------------------------------------------------------------------------------------ replay buffer
def test_replay_draw_is_the_buffers_draw_and_leaves_the_store_alone():
    """Does the pure replay_draw give the buffer's draw for equal seeds, restart whole rows, and not touch the
    store?"""
    buf = ReplayBuffer(40, (3,), low=2.0, high=3.0)
    buf.samples.zero_()
    store = buf.samples.clone()
    a = replay_draw(buf.samples, 500, 0.3, 2.0, 3.0, generator=torch.Generator().manual_seed(0))
    b = buf.draw(500, 0.3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    torch.testing.assert_close(buf.samples, store)
    fresh = a[0] >= 2.0  # (500, 3): a row is all fresh or all stored
    assert (fresh.all(dim=1) | (~fresh).all(dim=1)).all()


def test_injected_cd_loss_and_replay_draw_are_used():
    """Does the EBM train with an injected CD loss and replay draw, and do they enter the cache key (and only
    then)?"""
    calls = {"cd": 0, "draw": 0}

    def my_cd(e_pos, e_neg, alpha):
        calls["cd"] += 1
        return contrastive_divergence(e_pos, e_neg, alpha)

    def my_draw(samples, n, reinit_prob, low, high, generator=None):
        calls["draw"] += 1
        return replay_draw(samples, n, reinit_prob, low, high, generator=generator)

    cfg = EBMConfig(kind="2d", hidden=(8,), num_steps=2, buffer_size=20)
    model = EBM(cfg, cd_loss_fn=my_cd, replay_draw_fn=my_draw)
    loss, _ = model.loss(torch.randn(5, 2))
    loss.backward()
    assert calls == {"cd": 1, "draw": 1}
    plain = EBM(cfg).cache_key()
    assert set(plain) == {"langevin_step_fn"}
    assert model.cache_key() != plain and set(model.cache_key()) == {"langevin_step_fn", "cd_loss_fn", "replay_draw_fn"}



def test_replay_buffer_draws_stored_samples_without_reinit():
    """With reinit_prob 0, is every drawn row the stored sample of its slot (a copy, not a view)?"""
    buf = ReplayBuffer(20, (3,), low=-1.0, high=1.0)
    x, slots = buf.draw(50, 0.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (50, 3) and slots.shape == (50,) and slots.dtype == torch.int64
    torch.testing.assert_close(x, buf.samples[slots])
    x += 100
    assert buf.samples.abs().max() <= 1


def test_replay_buffer_reinitialises_a_fraction_with_uniform_noise():
    """Is about reinit_prob of the draws fresh noise in [low, high], and all of them with reinit_prob 1?"""
    buf = ReplayBuffer(10, (2,), low=5.0, high=6.0)
    buf.samples.zero_()  # stored samples are 0, noise is in [5, 6]
    x, _ = buf.draw(20_000, 0.3, generator=torch.Generator().manual_seed(0))
    fresh = x[:, 0] >= 5
    assert abs(fresh.float().mean().item() - 0.3) < 0.015
    assert (x[fresh] <= 6).all() and (x[~fresh] == 0).all()
    x_all, _ = buf.draw(100, 1.0)
    assert (x_all >= 5).all()


def test_replay_buffer_update_writes_the_slots():
    """Does update(slots, x) store x exactly in those slots and leave the others alone?"""
    buf = ReplayBuffer(6, (2,))
    before = buf.samples.clone()
    buf.update(torch.tensor([1, 4]), torch.full((2, 2), 7.0))
    assert (buf.samples[[1, 4]] == 7).all()
    torch.testing.assert_close(buf.samples[[0, 2, 3, 5]], before[[0, 2, 3, 5]])


def test_replay_buffer_is_reproducible_and_in_the_state_dict():
    """Do equal generator seeds draw equal batches, and does the model's state_dict hold the buffer?"""
    buf = ReplayBuffer(30, (2,))
    a = buf.draw(8, 0.5, generator=torch.Generator().manual_seed(1))
    b = buf.draw(8, 0.5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    assert "buffer.samples" in tiny_ebm().state_dict()


def test_training_step_writes_chain_ends_into_the_buffer():
    """After one loss call, does the buffer hold new (moved) samples, and none outside the image box?"""
    model = tiny_ebm("image", reinit_prob=0.0)
    before = model.buffer.samples.clone()
    model.loss(torch.rand(8, 1, 8, 8))
    changed = (model.buffer.samples != before).flatten(1).any(dim=1)
    assert 1 <= changed.sum() <= 8
    assert model.buffer.samples.min() >= 0 and model.buffer.samples.max() <= 1


# ------------------------------------------------------------------------------------------ the model
def test_contrastive_divergence_formula():
    """Is the CD surrogate mean E+ - mean E- + alpha (mean E+^2 + mean E-^2)?"""
    e_pos, e_neg = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0, 2.0])
    torch.testing.assert_close(contrastive_divergence(e_pos, e_neg, 0.5),
                               torch.tensor(2.0 - 0.0 + 0.5 * (5.0 + 8.0 / 3)))


@pytest.mark.parametrize("kind", ["2d", "image"])
def test_ebm_gradient_flows_to_every_parameter(kind):
    """Is the loss a finite scalar with float logs, and does its gradient reach every parameter (and equal the
    gradient of the CD surrogate recomputed on the same negatives)?"""
    model = tiny_ebm(kind, buffer_size=0)
    x = torch.randn(6, 2) if kind == "2d" else torch.rand(6, 1, 8, 8)
    torch.manual_seed(1)
    loss, logs = model.loss(x)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(logs) == {"e_pos", "e_neg", "cd"} and all(isinstance(v, float) for v in logs.values())
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    # same negatives again (same global seed, no buffer): the surrogate by hand
    model.zero_grad()
    torch.manual_seed(1)
    x_neg = model.negatives(6)
    assert not x_neg.requires_grad
    e_pos, e_neg = model.energy(x), model.energy(x_neg)
    (e_pos.mean() - e_neg.mean() + model.config.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())).backward()
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


@pytest.mark.parametrize("kind", ["2d", "image"])
def test_ebm_sample_contract(kind):
    """Are samples shaped (n, ...), reproducible with a generator, images in [0, 1], and is the trajectory
    (num_steps + 1, n, ...) from the noise to the samples?"""
    model = tiny_ebm(kind)
    shape = (2,) if kind == "2d" else (1, 8, 8)
    s1 = model.sample(5, generator=torch.Generator().manual_seed(0))
    s2, traj = model.sample(5, generator=torch.Generator().manual_seed(0), num_steps=7, return_trajectory=True)
    s3 = model.sample(5, generator=torch.Generator().manual_seed(0), num_steps=7)
    assert s1.shape == (5, *shape) and traj.shape == (8, 5, *shape)
    torch.testing.assert_close(s2, s3)
    torch.testing.assert_close(traj[-1], s2)
    if kind == "image":
        assert traj.min() >= 0 and traj.max() <= 1
    else:
        assert traj[0].abs().max() <= model.config.init_scale


def test_injected_langevin_step_is_used_and_changes_the_cache_key():
    """Does the EBM use an injected Langevin step in training and sampling, with a cache key of its own?"""
    calls = []

    def my_step(x, energy_fn, step_size, noise_scale, *, generator=None):
        calls.append(step_size)
        return langevin_step(x, energy_fn, step_size, noise_scale, generator=generator)

    cfg = EBMConfig(hidden=(8,), num_steps=2, buffer_size=10, step_size=0.05)
    model = EBM(cfg, langevin_step_fn=my_step)
    model.loss(torch.randn(4, 2))
    model.sample(3, generator=torch.Generator().manual_seed(0))
    assert calls == [0.05] * 4
    assert model.cache_key() != EBM(cfg).cache_key()
    assert model.cache_key() == EBM(cfg, langevin_step_fn=my_step).cache_key()


def test_energy_grid_evaluates_the_energy_at_the_grid_points():
    """Is E[i, j] the model's energy at (X[i, j], Y[i, j]), with x along columns and y along rows?"""
    model = tiny_ebm()
    X, Y, E = energy_grid(model, (-1.0, 2.0), (0.0, 3.0), res=7)
    assert X.shape == Y.shape == E.shape == (7, 7)
    torch.testing.assert_close(X[0], torch.linspace(-1, 2, 7))
    torch.testing.assert_close(Y[:, 0], torch.linspace(0, 3, 7))
    with torch.no_grad():
        ref = model.energy(torch.tensor([[X[2, 5].item(), Y[2, 5].item()]]))
    torch.testing.assert_close(E[2, 5:6], ref)
    _, _, E2 = energy_grid(quadratic_energy, (-1.0, 1.0), (-1.0, 1.0), res=3)
    torch.testing.assert_close(E2, torch.tensor([[1.0, 0.5, 1.0], [0.5, 0.0, 0.5], [1.0, 0.5, 1.0]]))


def test_bad_kind_is_refused():
    """Is an unknown kind refused with a clear message?"""
    with pytest.raises(ValueError, match="kind must be"):
        EBM(EBMConfig(kind="3d"))


@pytest.mark.slow
def test_ebm_overfits_one_batch():
    """Trained on one batch of 2D points around (2, -1), does the energy fall there and do Langevin samples
    from noise land near the batch?"""
    from gmlib.train import fit

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    centre = torch.tensor([2.0, -1.0])
    batch = centre + 0.2 * torch.randn(128, 2, generator=g)
    cfg = EBMConfig(kind="2d", hidden=(64, 64), step_size=0.05, noise_scale=0.05, num_steps=40,
                    buffer_size=1000, reinit_prob=0.05, alpha=0.1, init_scale=4.0)
    model = EBM(cfg)
    fit(model, [batch] * 300, lr=3e-3, device="cpu", progress=False)
    with torch.no_grad():
        e_data = model.energy(batch).mean()
        e_far = model.energy(torch.tensor([[-3.0, 3.0], [-3.0, -3.0], [3.0, 3.0]])).min()
    assert e_data < e_far - 1.0, (e_data, e_far)
    s = model.sample(500, generator=torch.Generator().manual_seed(1), num_steps=200)
    assert (s.mean(0) - centre).norm() < 0.3, s.mean(0)
    assert ((s - centre).norm(dim=1) < 1.0).float().mean() > 0.8
