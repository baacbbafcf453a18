"""The GAN's losses, gradient penalty, spectral norm and mode metrics against independent references, and the
training step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from gmlib.data import EIGHT_GAUSSIANS_CENTRES, EIGHT_GAUSSIANS_STD, sample_toy2d
from gmlib.models.gan import (
    GAN,
    LOSSES,
    GANConfig,
    d_loss_hinge,
    d_loss_minimax,
    d_loss_wgan,
    discriminator_accuracy,
    discriminator_step,
    discriminator_surface,
    g_loss_hinge,
    g_loss_minimax,
    g_loss_nonsaturating,
    g_loss_wgan,
    gan_step,
    generator_step,
    gradient_penalty,
    high_quality_fraction,
    make_gan_step,
    mode_counts,
    modes_covered,
)

TINY_2D = dict(data="2d", latent_dim=2, hidden=(16, 16))
TINY_IMAGE = dict(data="image", image_shape=(1, 8, 8), latent_dim=4, channels=4)


@pytest.fixture
def one_thread():
    """Small networks train faster on one thread, and two threads on a busy 2-core machine spin for ages."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _logits(seed: int = 0, n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(n, generator=g), 3 * torch.randn(n, generator=g)


# ---------------------------------------------------------------------------------------------- losses
def test_d_loss_minimax_matches_probabilities_and_bce():
    """Is the discriminator loss -mean log D(x) - mean log(1 - D(G(z))), by hand and as BCE with logits?"""
    real, fake = _logits()
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    by_hand = -torch.log(d_real).mean() - torch.log(1 - d_fake).mean()
    bce = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )
    torch.testing.assert_close(d_loss_minimax(real, fake), by_hand)
    torch.testing.assert_close(d_loss_minimax(real, fake), bce)


def test_g_loss_minimax_matches_probabilities_and_bce():
    """Is the saturating generator loss mean log(1 - D(G(z))), i.e. minus D's BCE on the fakes labelled fake?"""
    _, fake = _logits(1)
    by_hand = torch.log(1 - torch.sigmoid(fake)).mean()
    torch.testing.assert_close(g_loss_minimax(fake), by_hand)
    torch.testing.assert_close(g_loss_minimax(fake), -F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def test_g_loss_nonsaturating_matches_probabilities_and_bce():
    """Is the non-saturating loss -mean log D(G(z)), i.e. BCE on the fakes labelled real?"""
    _, fake = _logits(2)
    torch.testing.assert_close(g_loss_nonsaturating(fake), -torch.log(torch.sigmoid(fake)).mean())
    torch.testing.assert_close(g_loss_nonsaturating(fake), F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake)))


def test_probability_losses_stay_finite_for_confident_discriminators():
    """Do the losses stay finite (no log(0)) when D is certain, as softplus on logits allows?"""
    real, fake = torch.tensor([200.0, -200.0]), torch.tensor([-200.0, 200.0])
    for value in (d_loss_minimax(real, fake), g_loss_minimax(fake), g_loss_nonsaturating(fake)):
        assert torch.isfinite(value)
    torch.testing.assert_close(g_loss_nonsaturating(torch.tensor([-200.0])), torch.tensor(200.0))


def test_wgan_and_hinge_losses_match_hand_computation():
    """Are the WGAN and hinge losses the means written in the papers (elementwise, in plain Python)?"""
    real, fake = _logits(3)
    r, f = real.tolist(), fake.tolist()
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    torch.testing.assert_close(d_loss_wgan(real, fake).item(), mean(f) - mean(r), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_loss_wgan(fake).item(), -mean(f), rtol=1e-6, atol=1e-6)
    hinge = mean([max(0.0, 1 - v) for v in r]) + mean([max(0.0, 1 + v) for v in f])
    torch.testing.assert_close(d_loss_hinge(real, fake).item(), hinge, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_loss_hinge(fake).item(), -mean(f), rtol=1e-6, atol=1e-6)


def test_nonsaturating_loss_has_larger_gradient_when_d_rejects_the_fakes():
    """When D(G(z)) is near 0, is the non-saturating gradient much larger than the minimax one (the reason it
    exists), with the closed forms d/dl log(1 - sigmoid(l)) = -sigmoid(l) and d/dl -log sigmoid(l) = sigmoid(l) - 1?"""
    fake = torch.full((4,), -6.0, requires_grad=True)  # D(G(z)) = sigmoid(-6) ~ 0.0025
    (g_minimax,) = torch.autograd.grad(g_loss_minimax(fake), fake)
    (g_nonsat,) = torch.autograd.grad(g_loss_nonsaturating(fake), fake)
    p = torch.sigmoid(fake.detach())
    torch.testing.assert_close(g_minimax, -p / 4)
    torch.testing.assert_close(g_nonsat, (p - 1) / 4)
    assert (g_nonsat.abs() > 100 * g_minimax.abs()).all()


def test_discriminator_accuracy_counts_both_sides():
    """Is the accuracy the fraction of reals with logit > 0 plus fakes with logit < 0, over both sets?"""
    real, fake = torch.tensor([1.0, 2.0, -1.0]), torch.tensor([-3.0, 0.5, 4.0, -0.1])
    assert discriminator_accuracy(real, fake) == pytest.approx(4 / 7)


# ---------------------------------------------------------------------------------------------- gradient penalty
@pytest.mark.parametrize("shape", [(6, 3), (5, 1, 4, 4)])
def test_gradient_penalty_of_a_linear_critic_is_closed_form(shape):
    """For f(x) = w.x + b the gradient is w everywhere, so is the penalty (||w|| - 1)^2, with d/dw as by hand?"""
    g = torch.Generator().manual_seed(0)
    dim = math.prod(shape[1:])
    w = torch.randn(dim, generator=g).requires_grad_(True)
    b = torch.tensor(0.3)
    real, fake = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    gp = gradient_penalty(lambda x: x.flatten(1) @ w + b, real, fake, generator=torch.Generator().manual_seed(1))
    norm = w.detach().norm()
    torch.testing.assert_close(gp, (norm - 1) ** 2)
    (grad_w,) = torch.autograd.grad(gp, w)  # the penalty must be differentiable in the critic's parameters
    torch.testing.assert_close(grad_w, 2 * (norm - 1) * w.detach() / norm)


def test_gradient_penalty_evaluates_at_interpolates():
    """With real == fake every interpolate is that point: for f(x) = ||x||^2 / 2 (gradient x), is the penalty
    mean (||x|| - 1)^2, and are the interpolates reproducible with generator=?"""
    x = torch.randn(8, 5)
    gp = gradient_penalty(lambda v: 0.5 * v.pow(2).sum(1), x, x.clone())
    torch.testing.assert_close(gp, (x.norm(dim=1) - 1).pow(2).mean())
    real, fake = torch.randn(8, 5), torch.randn(8, 5)
    critic = lambda v: v.pow(3).sum(1)  # noqa: E731
    a = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    b = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------- spectral norm
@pytest.mark.parametrize("kind", [TINY_2D, TINY_IMAGE])
def test_spectral_norm_bounds_the_largest_singular_value(kind):
    """After a few power iterations (training-mode forward passes), is the largest singular value of every
    weight of D (a conv kernel reshaped to (out, in * k * k)) near 1, while the plain weights are not?"""
    torch.manual_seed(0)
    model = GAN(GANConfig(**kind, spectral_norm=True))
    plain = GAN(GANConfig(**kind))
    x = torch.rand(4, 2) if kind["data"] == "2d" else torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        for _ in range(30):
            model.D(x)
    layers = [m for m in model.D.modules() if parametrize.is_parametrized(m, "weight")]
    assert len(layers) == 3
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert 0.999 < sigma < 1.05, sigma
    sigmas = [
        torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        for m in plain.D.modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))
    ]
    assert max(abs(s - 1) for s in sigmas) > 0.1


# ---------------------------------------------------------------------------------------------- the model
@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("kind", [TINY_2D, TINY_IMAGE])
def test_loss_is_a_differentiable_scalar_reaching_both_networks(kind, loss):
    """Is loss(batch) a finite scalar whose gradient reaches every parameter of G and of D?"""
    model = GAN(GANConfig(**kind, loss=loss))
    x = torch.randn(6, 2) if kind["data"] == "2d" else torch.rand(6, 1, 8, 8)
    value, logs = model.loss(x)
    assert value.dim() == 0 and torch.isfinite(value)
    assert {"d_loss", "g_loss", "d_real", "d_fake", "d_acc"} <= set(logs)
    assert ("gp" in logs) == (loss == "wgan-gp")
    assert all(isinstance(v, float) for v in logs.values())
    value.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_images_are_mapped_to_tanh_range_and_back():
    """Does D see images in [-1, 1], and do image samples come back in [0, 1] and 2D samples unscaled?"""
    model = GAN(GANConfig(**TINY_IMAGE))
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(model.split_batch(x)[0], 2 * x - 1)
    torch.testing.assert_close(model.to_data_space(model.to_model_space(x)), x)
    s = model.sample(10, generator=torch.Generator().manual_seed(0))
    assert s.shape == (10, 1, 8, 8) and s.min() >= 0 and s.max() <= 1
    model_2d = GAN(GANConfig(**TINY_2D))
    pts = torch.randn(5, 2) * 10
    torch.testing.assert_close(model_2d.split_batch(pts)[0], pts)
    torch.testing.assert_close(
        model_2d.sample(3, generator=torch.Generator().manual_seed(0)),
        model_2d.G(torch.randn(3, 2, generator=torch.Generator().manual_seed(0))),
    )


@pytest.mark.parametrize("kind", [TINY_2D, TINY_IMAGE])
def test_conditional_gan_shapes_and_labels(kind):
    """Does a conditional GAN take labels in G and D, give the right shapes, and do labels change G's output?"""
    model = GAN(GANConfig(**kind, num_classes=3)).eval()
    x = torch.randn(6, 2) if kind["data"] == "2d" else torch.rand(6, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    real, labels = model.split_batch((x, y))
    assert model.D(real, labels).shape == (6,)
    value, _ = model.loss((x, y))
    assert torch.isfinite(value)
    shape = (4, 2) if kind["data"] == "2d" else (4, 1, 8, 8)
    a = model.sample(4, y=torch.zeros(4, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    b = model.sample(4, y=1, generator=torch.Generator().manual_seed(0))
    cycled = model.sample(4, generator=torch.Generator().manual_seed(0))  # labels 0, 1, 2, 0
    assert a.shape == b.shape == cycled.shape == shape
    assert not torch.allclose(a, b)
    torch.testing.assert_close(cycled[[0, 3]], a[[0, 3]])
    torch.testing.assert_close(cycled[1], b[1])
    with pytest.raises(ValueError, match="pass the labels"):
        model.loss(x)
    with pytest.raises(ValueError, match="expected 4 labels"):
        model.sample(4, y=torch.tensor([0, 1]))


def test_sample_is_reproducible_with_a_generator():
    """Do equal generator seeds give equal samples, and different seeds different ones?"""
    model = GAN(GANConfig(**TINY_IMAGE)).eval()
    a = model.sample(5, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, model.sample(5, generator=torch.Generator().manual_seed(4)))
    assert not torch.allclose(a, model.sample(5, generator=torch.Generator().manual_seed(5)))


def test_bad_configs_are_refused_with_a_message():
    """Are an unknown loss or data kind, n_critic < 1 and image sides not divisible by 4 refused clearly?"""
    with pytest.raises(ValueError, match="loss must be one of"):
        GAN(GANConfig(loss="lsgan"))
    with pytest.raises(ValueError, match="data must be"):
        GAN(GANConfig(data="3d"))
    with pytest.raises(ValueError, match="n_critic"):
        GAN(GANConfig(n_critic=0))
    with pytest.raises(ValueError, match="multiples of 4"):
        GAN(GANConfig(image_shape=(1, 10, 10)))


def test_28x28_images_are_supported():
    """Does the DCGAN pair work for 28x28 MNIST-sized images (7x7 base)?"""
    model = GAN(GANConfig(data="image", image_shape=(1, 28, 28), latent_dim=4, channels=4))
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)
    assert torch.isfinite(model.loss(torch.rand(3, 1, 28, 28))[0])


def test_injected_losses_are_used_and_change_the_cache_key():
    """Are injected d/g losses and gradient penalty called by training, and do they change the cache key?"""
    calls = []

    def my_d_loss(real_logits, fake_logits):
        calls.append("d")
        return d_loss_wgan(real_logits, fake_logits)

    def my_g_loss(fake_logits):
        calls.append("g")
        return g_loss_wgan(fake_logits)

    def my_penalty(critic, real, fake):
        calls.append("gp")
        return gradient_penalty(critic, real, fake)

    cfg = GANConfig(**TINY_2D, loss="wgan-gp", n_critic=2)
    model = GAN(cfg, d_loss_fn=my_d_loss, g_loss_fn=my_g_loss, gradient_penalty_fn=my_penalty)
    gan_step(model, torch.randn(8, 2), model.optimizers())
    assert calls == ["d", "gp", "d", "gp", "g"]
    assert model.cache_key() != GAN(cfg).cache_key()
    assert (
        model.cache_key() == GAN(cfg, d_loss_fn=my_d_loss, g_loss_fn=my_g_loss, gradient_penalty_fn=my_penalty).cache_key()
    )


# ---------------------------------------------------------------------------------------------- gan_step
@pytest.mark.parametrize("n_critic", [1, 3])
def test_gan_step_updates_both_networks_and_respects_n_critic(n_critic):
    """Does one gan_step change G and D, with n_critic Adam steps on D and one on G, and leave D trainable?"""
    torch.manual_seed(0)
    model = GAN(GANConfig(**TINY_IMAGE, n_critic=n_critic, spectral_norm=True))
    opt_g, opt_d = model.optimizers()
    g_before = [p.detach().clone() for p in model.G.parameters()]
    d_before = [p.detach().clone() for p in model.D.parameters()]
    logs = gan_step(model, (torch.rand(8, 1, 8, 8), torch.zeros(8)), (opt_g, opt_d))
    assert {"loss", "d_loss", "g_loss", "d_acc"} <= set(logs)
    assert all(not torch.equal(a, b) for a, b in zip(g_before, model.G.parameters(), strict=True))
    assert all(not torch.equal(a, b) for a, b in zip(d_before, model.D.parameters(), strict=True))
    assert {int(s["step"]) for s in opt_d.state.values()} == {n_critic}
    assert {int(s["step"]) for s in opt_g.state.values()} == {1}
    assert all(p.requires_grad for p in model.parameters())


def test_optimizers_use_the_config():
    """Does optimizers() return (Adam on G, Adam on D) with the config's learning rates and betas?"""
    model = GAN(GANConfig(**TINY_2D, lr_g=1e-3, lr_d=3e-3, betas=(0.0, 0.9)))
    opt_g, opt_d = model.optimizers()
    assert {id(p) for p in opt_g.param_groups[0]["params"]} == {id(p) for p in model.G.parameters()}
    assert {id(p) for p in opt_d.param_groups[0]["params"]} == {id(p) for p in model.D.parameters()}
    assert opt_g.param_groups[0]["lr"] == 1e-3 and opt_d.param_groups[0]["lr"] == 3e-3
    assert opt_g.param_groups[0]["betas"] == opt_d.param_groups[0]["betas"] == (0.0, 0.9)


def test_fit_runs_gan_step():
    """Does fit(..., optimizers=model.optimizers(), step_fn=gan_step) train and log both losses per step?"""
    from gmlib.train import fit

    model = GAN(GANConfig(**TINY_2D))
    loader = torch.utils.data.DataLoader(torch.randn(64, 2), batch_size=16)
    history = fit(model, loader, optimizers=model.optimizers(), step_fn=gan_step, device="cpu", progress=False)
    assert history.num_steps == 4 and len(history.steps["d_loss"]) == len(history.steps["g_loss"]) == 4


# ---------------------------------------------------------------------------------------------- the two updates
def _tiny_pair(num_classes: int = 0):
    torch.manual_seed(0)
    model = GAN(GANConfig(**TINY_2D, num_classes=num_classes))
    return model.G, model.D


def _sgd_expected(params, loss, lr):
    """The parameters after one plain SGD step on `loss`, computed by autograd alone."""
    grads = torch.autograd.grad(loss, params)
    return [(p - lr * g).detach() for p, g in zip(params, grads, strict=True)]


@pytest.mark.parametrize("num_classes", [0, 3])
def test_discriminator_step_is_one_sgd_step_on_d_alone(num_classes):
    """With plain SGD, does discriminator_step move D by -lr * grad of d_loss(D(real), D(G(z))) (stale gradients
    cleared first), leave G and its gradients alone, and return the loss before the update?"""
    G, D = _tiny_pair(num_classes)
    real, z = torch.randn(6, 2), torch.randn(6, 2)
    y = torch.tensor([0, 1, 2, 0, 1, 2]) if num_classes else None
    params = list(D.parameters())
    expected_loss = d_loss_minimax(D(real, y), D(G(z, y).detach(), y))
    expected = _sgd_expected(params, expected_loss, 0.1)
    g_before = [p.detach().clone() for p in G.parameters()]
    for p in params:
        p.grad = torch.full_like(p, 100.0)  # stale gradients that must not leak into the update
    opt_d = torch.optim.SGD(params, lr=0.1)
    value = discriminator_step(G, D, opt_d, d_loss_minimax, real, z, y)
    assert isinstance(value, float) and value == pytest.approx(expected_loss.item(), rel=1e-6)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.detach(), e)
    assert all(torch.equal(a, b) for a, b in zip(g_before, G.parameters(), strict=True))
    assert all(p.grad is None for p in G.parameters())


@pytest.mark.parametrize("num_classes", [0, 3])
def test_generator_step_is_one_sgd_step_on_g_through_d(num_classes):
    """With plain SGD, does generator_step move G by -lr * grad of g_loss(D(G(z))) (stale gradients cleared
    first), leave D unchanged and trainable, and return the loss before the update?"""
    G, D = _tiny_pair(num_classes)
    z = torch.randn(6, 2)
    y = torch.tensor([2, 1, 0, 2, 1, 0]) if num_classes else None
    params = list(G.parameters())
    expected_loss = g_loss_nonsaturating(D(G(z, y), y))
    expected = _sgd_expected(params, expected_loss, 0.05)
    d_before = [p.detach().clone() for p in D.parameters()]
    for p in params:
        p.grad = torch.full_like(p, -50.0)
    opt_g = torch.optim.SGD(params, lr=0.05)
    value = generator_step(G, D, opt_g, g_loss_nonsaturating, z, y)
    assert isinstance(value, float) and value == pytest.approx(expected_loss.item(), rel=1e-6)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.detach(), e)
    assert all(torch.equal(a, b) for a, b in zip(d_before, D.parameters(), strict=True))
    assert all(p.requires_grad for p in D.parameters())


@pytest.mark.parametrize("kind", [TINY_2D, TINY_IMAGE])
def test_make_gan_step_with_the_reference_updates_trains_exactly_as_gan_step(kind):
    """Does make_gan_step() (reference updates, the model's losses) give the same weights as gan_step from the
    same seed, for n_critic = 2 and a conditional model?"""
    cfg = GANConfig(**kind, loss="minimax", n_critic=2, num_classes=3)
    x = torch.randn(8, 2) if kind["data"] == "2d" else torch.rand(8, 1, 8, 8)
    batch = (x, torch.arange(8) % 3)
    models = []
    for step_fn in (gan_step, make_gan_step()):
        torch.manual_seed(0)
        model = GAN(cfg)
        optimizers = model.optimizers()
        for _ in range(3):
            logs = step_fn(model, batch, optimizers)
        assert {"loss", "d_loss", "g_loss"} <= set(logs)
        models.append(model)
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_make_gan_step_calls_the_given_updates_with_the_injected_losses():
    """Are a student's update functions called (n_critic D updates, then one G update) with the injected losses,
    and is a WGAN-GP model refused with a message?"""
    calls = []

    def my_d_step(G, D, opt_d, d_loss_fn, real, z, y=None):
        calls.append(("d", d_loss_fn))
        return discriminator_step(G, D, opt_d, d_loss_fn, real, z, y)

    def my_g_step(G, D, opt_g, g_loss_fn, z, y=None):
        calls.append(("g", g_loss_fn))
        return generator_step(G, D, opt_g, g_loss_fn, z, y)

    def my_g_loss(fake_logits):
        return g_loss_nonsaturating(fake_logits)

    model = GAN(GANConfig(**TINY_2D, loss="minimax", n_critic=2), g_loss_fn=my_g_loss)
    make_gan_step(my_d_step, my_g_step)(model, torch.randn(4, 2), model.optimizers())
    assert calls == [("d", d_loss_minimax), ("d", d_loss_minimax), ("g", my_g_loss)]
    wgan = GAN(GANConfig(**TINY_2D, loss="wgan-gp"))
    with pytest.raises(ValueError, match="gan_step"):
        make_gan_step()(wgan, torch.randn(4, 2), wgan.optimizers())


# ---------------------------------------------------------------------------------------------- 2D diagnostics
def test_discriminator_surface_is_d_probability_on_the_grid():
    """Is surface[i, j] = sigmoid(D((xs[j], ys[i]))), with the requested grid?"""
    model = GAN(GANConfig(**TINY_2D)).eval()
    xs, ys, probs = discriminator_surface(model, (-2.0, 2.0), (-1.0, 3.0), 5)
    assert probs.shape == (5, 5)
    torch.testing.assert_close(xs, torch.linspace(-2, 2, 5))
    torch.testing.assert_close(ys, torch.linspace(-1, 3, 5))
    with torch.no_grad():
        point = torch.sigmoid(model.D(torch.tensor([[xs[1].item(), ys[3].item()]])))
    torch.testing.assert_close(probs[3, 1], point[0])
    assert ((probs > 0) & (probs < 1)).all()
    with pytest.raises(ValueError, match="2D"):
        discriminator_surface(GAN(GANConfig(**TINY_IMAGE)))


def test_mode_metrics_on_constructed_samples():
    """All 8 modes vs a collapse onto one mode vs points between the modes: are the counts and fractions right?"""
    g = torch.Generator().manual_seed(0)
    centres = EIGHT_GAUSSIANS_CENTRES
    all_modes = centres.repeat(50, 1) + 0.05 * torch.randn(400, 2, generator=g)
    one_mode = centres[3] + 0.05 * torch.randn(400, 2, generator=g)
    between = 0.5 * (centres + centres.roll(1, 0))  # midpoints: 0.77 from both neighbours, beyond 3 std
    assert modes_covered(all_modes) == 8 and high_quality_fraction(all_modes) == 1.0
    assert mode_counts(all_modes).tolist() == [50] * 8
    assert modes_covered(one_mode) == 1 and mode_counts(one_mode)[3] == 400
    assert modes_covered(between) == 0 and high_quality_fraction(between) == 0.0
    # a few stray samples at a mode do not cover it (min_fraction), and half of the samples far away halve quality
    mixed = torch.cat([one_mode, centres[0].expand(2, 2), torch.zeros(402, 2)])
    assert modes_covered(mixed) == 1 and modes_covered(mixed, min_fraction=0.0) == 2
    assert high_quality_fraction(mixed) == pytest.approx(0.5)


def test_real_data_is_high_quality_with_the_rayleigh_probability():
    """For real 8-gaussian data, is the fraction within 3 std the Rayleigh probability 1 - exp(-9/2)?"""
    x = sample_toy2d("8gaussians", 20000, generator=torch.Generator().manual_seed(0))
    assert high_quality_fraction(x, EIGHT_GAUSSIANS_CENTRES, 3 * EIGHT_GAUSSIANS_STD) == pytest.approx(
        1 - math.exp(-4.5), abs=0.003
    )
    assert modes_covered(x) == 8


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_2d_gan_covers_the_eight_gaussians(one_thread):
    """Does a small non-saturating GAN, trained briefly (seeded), cover at least 6 of the 8 modes with mostly
    high-quality samples?"""
    from gmlib.data import toy2d_dataset
    from gmlib.train import fit

    torch.manual_seed(0)
    data = toy2d_dataset("8gaussians", 20000, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = GAN(GANConfig(data="2d", latent_dim=2, hidden=(128, 128, 128), lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.9)))
    fit(
        model,
        loader,
        epochs=100,
        optimizers=model.optimizers(),
        step_fn=gan_step,
        max_steps=1000,
        device="cpu",
        progress=False,
    )
    s = model.sample(2000, generator=torch.Generator().manual_seed(0))
    assert modes_covered(s) >= 6, mode_counts(s)
    assert high_quality_fraction(s) > 0.5


@pytest.mark.slow
def test_dcgan_overfits_one_batch_of_digits_with_a_sensible_discriminator(one_thread):
    """On one batch of 64 digits: does D alone learn to reject the untrained G's images (accuracy -> 1), and
    does adversarial training bring samples close to the batch (nearest-neighbour distance falls well below
    the untrained G's) while D's accuracy stays between chance and certainty (neither side wins outright)?"""
    from gmlib.data import load_digits

    torch.manual_seed(0)
    x = load_digits("train").tensors[0][:64]  # (64, 1, 8, 8)
    cfg = GANConfig(data="image", image_shape=(1, 8, 8), latent_dim=16, channels=32, lr_g=5e-4, lr_d=5e-4)

    def nn_distance(model):
        s = model.eval().sample(256, generator=torch.Generator().manual_seed(1))
        model.train()
        return torch.cdist(s.flatten(1), x.flatten(1)).min(dim=1).values.mean().item()

    model = GAN(cfg)
    start = nn_distance(model)
    _, opt_d = model.optimizers()
    real = model.split_batch(x)[0]
    for _ in range(30):  # D alone against a fixed, untrained G
        with torch.no_grad():
            fake = model.G(model.sample_latent(64))
        d_loss, logs = model.discriminator_loss(real, fake)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
    assert logs["d_acc"] > 0.95, logs

    model = GAN(cfg)
    optimizers = model.optimizers()
    accuracy = [gan_step(model, x, optimizers)["d_acc"] for _ in range(400)]
    end = nn_distance(model)
    late_accuracy = sum(accuracy[-50:]) / 50
    assert end < 0.75 * start, (start, end)
    assert 0.55 < late_accuracy < 0.95, late_accuracy
