"""Diffusion: schedules, the forward process, the DDPM and DDIM schedulers, the UNet and the DDPM model,
checked against closed forms computed by hand, Monte-Carlo simulation of the forward chain, Bayes' rule and
noise oracles."""

from __future__ import annotations

import math

import pytest
import torch

from gmlib.data import EIGHT_GAUSSIANS_CENTRES, load_digits, sample_toy2d
from gmlib.diffusion import (
    DDIMScheduler,
    DDPMScheduler,
    NoiseSchedule,
    alpha_bar_from_betas,
    cosine_beta_schedule,
    ddim_step,
    ddpm_step,
    epsilon_loss,
    extract,
    linear_beta_schedule,
    posterior_mean_variance,
    predict_x0,
    q_sample,
)
from gmlib.models.ddpm import DDPM, DDPMConfig, diffusion_loss, guided_eps
from gmlib.nn.unet import MLPDenoiser, SinusoidalTimeEmbedding, UNet


def hand_alpha_bar(betas, t: int) -> float:
    """prod_{s <= t} (1 - beta_s) with a Python loop (no cumprod)."""
    return math.prod(1.0 - float(b) for b in betas[: t + 1])


def oracle(x0_star: torch.Tensor, alpha_bar: torch.Tensor):
    """The perfect noise predictor for data that is a point mass at x0_star: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""

    def eps(x_t, t):
        ab = float(alpha_bar[int(t)])
        return (x_t - math.sqrt(ab) * x0_star) / math.sqrt(1.0 - ab)

    return eps


# ---------------------------------------------------------------------------------------------- schedules
def test_extract_broadcasts_to_points_and_images():
    """Does extract give a[t] shaped (B, 1, ...) for 2D and image batches, and (1, ...) for one int t?"""
    a = torch.arange(10.0) * 2
    t = torch.tensor([0, 3, 9])
    assert extract(a, t, (3, 2)).shape == (3, 1)
    out = extract(a, t, (3, 1, 8, 8))
    assert out.shape == (3, 1, 1, 1)
    assert out.flatten().tolist() == [0.0, 6.0, 18.0]
    assert extract(a, 4, (5, 1, 8, 8)).shape == (1, 1, 1, 1)
    assert float(extract(a, torch.tensor(4), (5, 2))) == 8.0


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_bar_is_decreasing_and_betas_valid(name):
    """Are the betas in (0, 1) and alpha_bar strictly decreasing from near 1 to near 0?"""
    s = NoiseSchedule.from_name(name, 1000)
    assert ((s.betas > 0) & (s.betas < 1)).all()
    assert (s.alpha_bar[1:] < s.alpha_bar[:-1]).all()
    assert s.alpha_bar[0] > 0.999 and s.alpha_bar[-1] < 1e-3
    snr = s.snr(torch.arange(1000))
    assert (snr[1:] < snr[:-1]).all()
    torch.testing.assert_close(s.snr(500), s.alpha_bar[500] / (1 - s.alpha_bar[500]))


def test_linear_schedule_endpoints():
    """Does the linear schedule run from 1e-4 to 0.02 for T = 1000 (Ho et al.) and scale by 1000 / T otherwise?"""
    b = linear_beta_schedule(1000)
    assert math.isclose(b[0].item(), 1e-4) and math.isclose(b[-1].item(), 0.02)
    b = linear_beta_schedule(100)
    assert math.isclose(b[0].item(), 1e-3) and math.isclose(b[-1].item(), 0.2)
    b = linear_beta_schedule(10, 0.1, 0.3)
    assert math.isclose(b[0].item(), 0.1) and math.isclose(b[-1].item(), 0.3)


def test_cosine_schedule_matches_its_definition_and_is_clipped():
    """Is alpha_bar_t = f(t) / f(0) with f(t) = cos^2((t/T + s)/(1 + s) pi/2) (Nichol and Dhariwal, eq. 17),
    with the last betas clipped to 0.999?"""
    T, s = 1000, 0.008

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    betas = cosine_beta_schedule(T, s)
    for t in (0, 1, 250, 500, 900):  # index t is the paper's t + 1
        assert math.isclose(hand_alpha_bar(betas, t), f(t + 1) / f(0), rel_tol=1e-9)
    assert betas.max().item() == pytest.approx(0.999)
    assert betas[-1].item() == pytest.approx(0.999)
    assert 1 - betas[0].item() == pytest.approx(f(1) / f(0), rel=1e-12)


# ---------------------------------------------------------------------------------------------- forward process
def test_q_sample_and_add_noise_match_the_closed_form_by_hand():
    """Do q_sample, NoiseSchedule.q_sample and the schedulers' add_noise equal
    sqrt(prod(1 - beta)) x0 + sqrt(1 - prod(1 - beta)) eps computed with a Python loop?"""
    betas = linear_beta_schedule(200)
    sched = NoiseSchedule(betas)
    x0, eps = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t = torch.tensor([0, 17, 120, 199])
    ref = torch.stack([
        math.sqrt(hand_alpha_bar(betas, k)) * x0[i] + math.sqrt(1 - hand_alpha_bar(betas, k)) * eps[i]
        for i, k in enumerate(t.tolist())
    ])
    torch.testing.assert_close(q_sample(x0, t, eps, sched.alpha_bar), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sched.q_sample(x0, t, eps), ref, atol=1e-5, rtol=1e-5)
    for scheduler in (DDPMScheduler(sched), DDIMScheduler(betas)):
        torch.testing.assert_close(scheduler.add_noise(x0, eps, t), ref, atol=1e-5, rtol=1e-5)
        one = scheduler.add_noise(x0, eps, 120)
        ab = hand_alpha_bar(betas, 120)
        torch.testing.assert_close(one, math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_iterated_forward_kernel_matches_the_closed_form(name):
    """Does applying q(x_s | x_{s-1}) = N(sqrt(1 - beta_s) x_{s-1}, beta_s) t + 1 times (Monte Carlo) give the
    mean and variance of the closed form q(x_t | x0) that q_sample draws from?"""
    T, n = 200, 50_000
    sched = NoiseSchedule.from_name(name, T)
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([-1.5, 0.3, 2.0]).double()
    x = x0.expand(n, 3).clone()
    checkpoints = {0, 19, 99, 199}
    for s in range(T):
        beta = sched.betas[s].double()
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(n, 3, generator=g, dtype=torch.float64)
        if s in checkpoints:
            t = torch.full((n,), s)
            closed = q_sample(x0.expand(n, 3).float(), t, torch.randn(n, 3, generator=g), sched.alpha_bar)
            ab = sched.alpha_bar[s].double()
            torch.testing.assert_close(x.mean(0), ab.sqrt() * x0, atol=0.015, rtol=0)
            torch.testing.assert_close(x.var(0), (1 - ab).expand(3), atol=0.02, rtol=0.02)
            torch.testing.assert_close(closed.double().mean(0), x.mean(0), atol=0.02, rtol=0)
            torch.testing.assert_close(closed.double().var(0), x.var(0), atol=0.03, rtol=0.03)


def test_posterior_matches_bayes_rule():
    """Are the mean and variance of q(x_{t-1} | x_t, x0) those of prior x Gaussian likelihood (Bayes' rule):
    precision = 1 / (1 - alpha_bar_{t-1}) + alpha_t / beta_t,
    mean = var * (sqrt(alpha_bar_{t-1}) x0 / (1 - alpha_bar_{t-1}) + sqrt(alpha_t) x_t / beta_t)?"""
    betas = cosine_beta_schedule(100)
    sched = NoiseSchedule(betas)
    x0, x_t = torch.randn(5, 2), torch.randn(5, 2)
    for t in (1, 2, 40, 99):
        beta, ab_prev = float(betas[t]), hand_alpha_bar(betas, t - 1)
        prec = 1 / (1 - ab_prev) + (1 - beta) / beta  # prior N(sqrt(ab_prev) x0, 1 - ab_prev), likelihood in x_{t-1}
        var = 1 / prec
        mean = var * (math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(1 - beta) * x_t / beta)
        m1, v1 = sched.posterior(x0, x_t, t)
        m2, v2 = posterior_mean_variance(x0, x_t, torch.full((5,), t), betas)
        for m, v in ((m1, v1), (m2, v2)):
            torch.testing.assert_close(m.double(), mean.double(), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(v.double().expand(5, 2), torch.full((5, 2), var, dtype=torch.float64),
                                       atol=1e-9, rtol=1e-4)
        assert math.isclose(sched.posterior_log_variance_clipped[t].item(), math.log(var), rel_tol=1e-4)
    # t = 0: nothing left to infer, the posterior is the point x0
    m, v = sched.posterior(x0, x_t, 0)
    torch.testing.assert_close(m, x0)
    assert float(v.max()) == 0.0


def test_predict_x0_inverts_q_sample_and_epsilon_loss_is_mse():
    """Does predict_x0 with the true eps return x0, and is epsilon_loss the mean squared error?"""
    sched = NoiseSchedule.from_name("linear", 100)
    x0, eps, t = torch.randn(6, 3), torch.randn(6, 3), torch.randint(0, 100, (6,))
    x_t = q_sample(x0, t, eps, sched.alpha_bar)
    torch.testing.assert_close(predict_x0(x_t, t, eps, sched.alpha_bar), x0, atol=1e-3, rtol=1e-3)
    a, b = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    torch.testing.assert_close(epsilon_loss(a, b), torch.nn.functional.mse_loss(a, b))


# ---------------------------------------------------------------------------------------------- schedulers
@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler])
@pytest.mark.parametrize("num_steps", [1, 7, 50, 333, 1000])
def test_set_timesteps_is_decreasing_unique_and_in_range(cls, num_steps):
    """Are the timesteps decreasing, distinct, within [0, T), ending at 0 and numbering num_steps?"""
    scheduler = cls(linear_beta_schedule(1000))
    scheduler.set_timesteps(num_steps)
    ts = scheduler.timesteps
    assert ts.dtype == torch.long and len(ts) == num_steps
    assert len(set(ts.tolist())) == num_steps
    assert ts.min() >= 0 and ts.max() <= 999 and ts[0] == 999
    if num_steps > 1:
        assert (ts[1:] < ts[:-1]).all() and ts[-1] == 0


def test_set_timesteps_rejects_impossible_counts():
    """Is an error raised for 0 steps or more steps than T, and for a step at a timestep not in the set?"""
    scheduler = DDPMScheduler(linear_beta_schedule(10))
    for bad in (0, 11):
        with pytest.raises(ValueError, match="num_steps"):
            scheduler.set_timesteps(bad)
    scheduler.set_timesteps(3)
    with pytest.raises(ValueError, match="not one of"):
        scheduler.step(torch.zeros(1, 2), 5, torch.zeros(1, 2))


def test_strided_ddpm_recomputes_betas_that_keep_the_marginals():
    """With all T steps are the betas the schedule's; on a subset, does prod (1 - beta) along the subset give
    alpha_bar at each kept timestep (the marginals q(x_t | x0) are kept)?"""
    betas = cosine_beta_schedule(1000)
    scheduler = DDPMScheduler(betas)
    scheduler.set_timesteps(1000)
    torch.testing.assert_close(scheduler.betas, betas.flip(0), atol=1e-6, rtol=1e-4)
    scheduler.set_timesteps(37)
    ts = scheduler.timesteps.tolist()
    sub_betas = scheduler.betas.tolist()
    for k in range(len(ts)):  # ts[k] is reached after the subset steps k, k+1, ..., S-1 (in increasing t)
        assert math.prod(1 - b for b in sub_betas[k:]) == pytest.approx(hand_alpha_bar(betas, ts[k]), rel=1e-5)


@pytest.mark.parametrize("num_steps", [None, 20])
@pytest.mark.parametrize("clip", [None, 1.0])
def test_ddpm_with_a_noise_oracle_recovers_a_point_mass(num_steps, clip):
    """Does DDPM sampling with the perfect eps for a point-mass data distribution end exactly at that point?"""
    sched = NoiseSchedule.from_name("linear", 1000)
    x0_star = torch.tensor([0.7, -0.4, 0.1]).expand(8, 3)
    eps_fn = oracle(x0_star, sched.alpha_bar)
    scheduler = DDPMScheduler(sched, clip_sample=clip)
    scheduler.set_timesteps(num_steps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g)
    for t in scheduler.timesteps:
        x, x0_pred = scheduler.step(eps_fn(x, t), t, x, generator=g)
        torch.testing.assert_close(x0_pred, x0_star, atol=2e-3, rtol=0)
    torch.testing.assert_close(x, x0_star, atol=1e-5, rtol=0)


def test_ddim_eta0_is_deterministic_and_eta1_is_not():
    """With eta = 0, is the output the same for the same x_T whatever the generator; with eta = 1, not?"""
    scheduler = DDIMScheduler(cosine_beta_schedule(100))
    scheduler.set_timesteps(10)
    w = torch.randn(2, 2, generator=torch.Generator().manual_seed(3))

    def run(eta, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.ones(5, 2)  # the same x_T every time
        for t in scheduler.timesteps:
            x, _ = scheduler.step(torch.tanh(x @ w) * (t / 100), t, x, eta=eta, generator=g)
        return x

    torch.testing.assert_close(run(0.0, 1), run(0.0, 2), atol=0, rtol=0)
    assert not torch.allclose(run(1.0, 1), run(1.0, 2))


@pytest.mark.parametrize("num_steps", [2, 5])
def test_ddim_with_a_noise_oracle_recovers_x0_in_few_steps(num_steps):
    """Does deterministic DDIM with the perfect eps reach the data point exactly, in a handful of steps?"""
    sched = NoiseSchedule.from_name("cosine", 1000)
    x0_star = torch.tensor([[1.0, -2.0], [0.5, 0.25]]).repeat(3, 1)
    eps_fn = oracle(x0_star, sched.alpha_bar)
    scheduler = DDIMScheduler(sched)
    scheduler.set_timesteps(num_steps)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps:
        x, _ = scheduler.step(eps_fn(x, t), t, x)
    torch.testing.assert_close(x, x0_star, atol=1e-4, rtol=0)


def test_ddim_with_eta1_is_ddpm_on_the_same_subset():
    """Is DDIM with eta = 1 (Song et al., eq. 16) the DDPM ancestral sampler with recomputed betas (same noise)?"""
    sched = NoiseSchedule.from_name("linear", 200)
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    out = []
    for scheduler, kw in ((DDPMScheduler(sched), {}), (DDIMScheduler(sched), {"eta": 1.0})):
        scheduler.set_timesteps(15)
        g = torch.Generator().manual_seed(7)
        x = torch.randn(4, 3, generator=g)
        for t in scheduler.timesteps:
            x, _ = scheduler.step(torch.sin(x @ w), t, x, generator=g, **kw)
        out.append(x)
    torch.testing.assert_close(out[0], out[1], atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------- pure steps
def test_alpha_bar_from_betas_is_the_running_product():
    """Is alpha_bar_from_betas the running product of 1 - beta, computed here with a Python loop?"""
    betas = cosine_beta_schedule(50)
    ab = alpha_bar_from_betas(betas)
    assert ab.shape == (50,) and ab.dtype == torch.float64
    for t in (0, 1, 25, 49):
        assert ab[t].item() == pytest.approx(hand_alpha_bar(betas, t), rel=1e-12)
    torch.testing.assert_close(NoiseSchedule(betas).alpha_bar, ab.float())


def bayes_posterior(x0, x_t, ab, ab_prev):
    """Mean and variance of q(x_prev | x_t, x0) by Bayes' rule: prior N(sqrt(ab_prev) x0, 1 - ab_prev) times the
    likelihood N(x_t; sqrt(alpha) x_prev, beta), alpha = ab / ab_prev."""
    alpha = ab / ab_prev
    beta = 1 - alpha
    var = 1 / (1 / (1 - ab_prev) + alpha / beta)
    return var * (math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(alpha) * x_t / beta), var


def test_ddpm_step_samples_the_bayes_posterior_given_the_implied_x0():
    """With eps consistent with x0, is ddpm_step a draw from q(x_prev | x_t, x0) (Bayes' rule): exact mean
    differences for a shared seed, the posterior variance, no noise at the last step, and the generator used?"""
    ab, ab_prev = 0.3, 0.6
    x0, x_t = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    eps = (x_t - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    mean, var = bayes_posterior(x0, x_t, ab, ab_prev)
    g = torch.Generator().manual_seed(0)
    out = ddpm_step(x_t, eps, ab, ab_prev, g)
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(out, mean + math.sqrt(var) * z)
    # the last step (alpha_bar_prev = 1) is deterministic: x0_hat
    torch.testing.assert_close(ddpm_step(x_t, eps, ab, 1.0), x0)
    # the same as one DDPMScheduler step on a two-step schedule with these alpha_bars
    betas = torch.tensor([1 - ab_prev, 1 - ab / ab_prev], dtype=torch.float64)
    scheduler = DDPMScheduler(betas)
    ref, _ = scheduler.step(eps.float(), 1, x_t.float(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ddpm_step(x_t.float(), eps.float(), ab, ab_prev, torch.Generator().manual_seed(0)),
                               ref, atol=1e-5, rtol=1e-5)


def test_ddim_step_is_deterministic_exact_for_an_oracle_and_invertible():
    """Is ddim_step (eta = 0) the DDIMScheduler's step, Song et al.'s eq. 13, exact for the true eps, and undone by
    the step back with the same eps?"""
    ab, ab_prev = 0.2, 0.7
    x0, eps = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    out = ddim_step(x_t, eps, ab, ab_prev)
    torch.testing.assert_close(out, math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps)
    w = torch.randn(5, 2, dtype=torch.float64)  # any eps, not only the true one

    def eq13(e):  # x' / sqrt(ab') = x / sqrt(ab) + (sqrt((1 - ab') / ab') - sqrt((1 - ab) / ab)) e
        return math.sqrt(ab_prev) * (x_t / math.sqrt(ab)
                                     + (math.sqrt((1 - ab_prev) / ab_prev) - math.sqrt((1 - ab) / ab)) * e)

    torch.testing.assert_close(out, eq13(eps))
    torch.testing.assert_close(ddim_step(x_t, w, ab, ab_prev), eq13(w))
    torch.testing.assert_close(ddim_step(ddim_step(x_t, w, ab, ab_prev), w, ab_prev, ab), x_t)
    scheduler = DDIMScheduler(torch.tensor([1 - ab_prev, 1 - ab / ab_prev], dtype=torch.float64))
    torch.testing.assert_close(scheduler.step(w.float(), 1, x_t.float())[0], ddim_step(x_t, w, ab, ab_prev).float(),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("clip", [None, 1.0])
@pytest.mark.parametrize("num_steps", [None, 9])
def test_injected_step_functions_reproduce_the_built_in_samplers(clip, num_steps):
    """Do DDPMScheduler(step_fn=ddpm_step) and DDIMScheduler(step_fn=ddim_step) follow the built-in updates step
    for step (same noise, clipping included)?"""
    sched = NoiseSchedule.from_name("cosine", 100)
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(0))
    for cls, fn in ((DDPMScheduler, ddpm_step), (DDIMScheduler, ddim_step)):
        out = []
        for step_fn in (None, fn):
            scheduler = cls(sched, clip_sample=clip, step_fn=step_fn)
            scheduler.set_timesteps(num_steps)
            g = torch.Generator().manual_seed(1)
            x = torch.randn(4, 3, generator=g)
            x0s = []
            for t in scheduler.timesteps:
                x, x0 = scheduler.step(torch.sin(x @ w), t, x, generator=g)
                x0s.append(x0)
            out.append((x, torch.stack(x0s)))
        torch.testing.assert_close(out[1][0], out[0][0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out[1][1], out[0][1], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="fixed_small"):
        DDPMScheduler(sched, variance_type="fixed_large", step_fn=ddpm_step)


def test_diffusion_loss_is_zero_for_the_noise_oracle_and_reproducible():
    """Does diffusion_loss give 0 for a model that recovers the true eps from (x_t, t), the mean of eps^2 (about 1)
    for a model that predicts 0, t in [0, T), and the same value for the same generator seed?"""
    alpha_bar = NoiseSchedule.from_name("linear", 50).alpha_bar
    x0 = torch.randn(4000, 2)
    seen = {}

    def oracle_model(x_t, t):
        seen["t"] = t
        ab = alpha_bar[t][:, None]
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    loss = diffusion_loss(oracle_model, x0, alpha_bar, torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and loss.item() < 1e-8
    assert seen["t"].dtype == torch.long and seen["t"].min() == 0 and seen["t"].max() == 49
    zero = diffusion_loss(lambda x_t, t: torch.zeros_like(x_t), x0, alpha_bar, torch.Generator().manual_seed(0))
    assert zero.item() == pytest.approx(1.0, abs=0.05)
    a = diffusion_loss(lambda x_t, t: x_t * 0.5, x0, alpha_bar, torch.Generator().manual_seed(3))
    b = diffusion_loss(lambda x_t, t: x_t * 0.5, x0, alpha_bar, torch.Generator().manual_seed(3))
    assert a.item() == b.item()


def test_diffusion_loss_fn_trains_like_the_built_in_loss():
    """Does DDPM(diffusion_loss_fn=diffusion_loss) give the built-in loss for the same generator (unconditional),
    pass labels to a conditional denoiser, and enter the cache key only when given?"""
    base = tiny()
    model = DDPM(base.config, diffusion_loss_fn=diffusion_loss)
    model.load_state_dict(base.state_dict())
    x = torch.rand(6, 1, 8, 8)
    ref, _ = base.loss(x, generator=torch.Generator().manual_seed(0))
    got, logs = model.loss(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got, ref)
    assert logs == {} and "diffusion_loss_fn" not in base.cache_key() and model.cache_key() != base.cache_key()
    cond = tiny(num_classes=3)
    seen = {}

    def my_loss(eps_model, x0, alpha_bar, generator=None):
        seen["out"] = eps_model(x0, torch.zeros(len(x0), dtype=torch.long))
        return diffusion_loss(eps_model, x0, alpha_bar, generator)

    cmodel = DDPM(DDPMConfig(kind="image", T=20, widths=(8, 16), num_classes=3, p_uncond=0.0), diffusion_loss_fn=my_loss)
    cmodel.load_state_dict(cond.state_dict())
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    cmodel.loss((x, y))
    torch.testing.assert_close(seen["out"], cond.denoiser(2 * x - 1, torch.zeros(6, dtype=torch.long), y))


# ---------------------------------------------------------------------------------------------- networks
def test_sinusoidal_time_embedding_by_hand():
    """Is the embedding [sin(t w_k), cos(t w_k)] with w_k = 10000^(-k / (dim/2 - 1))?"""
    emb = SinusoidalTimeEmbedding(8)(torch.tensor([0, 5]))
    assert emb.shape == (2, 8)
    freqs = [10000 ** (-k / 3) for k in range(4)]
    ref = torch.tensor([[math.sin(t * f) for f in freqs] + [math.cos(t * f) for f in freqs] for t in (0, 5)])
    torch.testing.assert_close(emb, ref)


@pytest.mark.parametrize("size", [8, 28, 7])
def test_unet_keeps_the_image_shape_and_uses_labels(size):
    """Does the UNet map (B, 1, H, W) to (B, 1, H, W) for 8x8, 28x28 and odd 7x7, with labels changing the output
    and y = None meaning the null class?"""
    torch.manual_seed(0)
    net = UNet(1, (8, 16), num_classes=3)
    x, t = torch.randn(2, 1, size, size), torch.tensor([3, 500])
    out = net(x, t, torch.tensor([0, 1]))
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, t, torch.tensor([2, 2])))
    torch.testing.assert_close(net(x, t), net(x, t, torch.tensor([3, 3])))
    with pytest.raises(ValueError, match="unconditional"):
        UNet(1, (8, 16))(x, t, torch.tensor([0, 1]))


def test_mlp_denoiser_shapes():
    """Does the MLP denoiser map (B, d) points and (B,) or scalar timesteps to (B, d)?"""
    net = MLPDenoiser(2, (16, 16), num_classes=2)
    assert net(torch.randn(5, 2), torch.randint(0, 100, (5,))).shape == (5, 2)
    assert net(torch.randn(5, 2), torch.tensor(3), torch.zeros(5, dtype=torch.long)).shape == (5, 2)


# ---------------------------------------------------------------------------------------------- the model
def tiny(kind="image", **kw) -> DDPM:
    torch.manual_seed(0)
    widths = (8, 16) if kind == "image" else (16, 16)
    return DDPM(DDPMConfig(kind=kind, T=kw.pop("T", 20), widths=widths, **kw))


def test_schedule_constants_are_buffers():
    """Are the schedule's constants buffers (in state_dict, moved by .to) rather than parameters?"""
    model = tiny()
    state = model.state_dict()
    for name in ("betas", "alpha_bar", "posterior_variance", "posterior_mean_coef1"):
        assert f"schedule.{name}" in state
    assert not any(n.startswith("schedule.") for n, _ in model.named_parameters())
    assert model.double().schedule.alpha_bar.dtype == torch.float64


def test_injected_sampling_pieces_are_used_by_sample():
    """Does sample call the injected ddpm_step_fn, ddim_step_fn and guidance_fn, and give the same samples as the
    built-in pieces when they are gmlib's own?"""
    calls = []

    def spy(fn, name):
        def wrapped(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return wrapped

    base = tiny(num_classes=2)
    model = DDPM(base.config, ddpm_step_fn=spy(ddpm_step, "ddpm"), ddim_step_fn=spy(ddim_step, "ddim"),
                 guidance_fn=spy(guided_eps, "cfg"))
    model.load_state_dict(base.state_dict())
    assert model.cache_key() == base.cache_key()
    for kw in ({"sampler": "ddpm", "num_steps": 6}, {"sampler": "ddim", "num_steps": 5}):
        calls.clear()
        got = model.sample(3, y=1, guidance_scale=2.0, generator=torch.Generator().manual_seed(0), **kw)
        ref = base.sample(3, y=1, guidance_scale=2.0, generator=torch.Generator().manual_seed(0), **kw)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
        assert calls.count(kw["sampler"]) == kw["num_steps"] and calls.count("cfg") == kw["num_steps"]
    calls.clear()
    model.sample(2, sampler="ddim", num_steps=3, eta=1.0)  # the injected DDIM step covers eta = 0 only
    assert "ddim" not in calls


def test_guidance_scale_zero_is_the_conditional_prediction():
    """Is eps with guidance_scale = 0 the conditional prediction, and with w the formula (1 + w) c - w u?"""
    model = tiny(num_classes=3)
    x, t, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 5, 9, 19]), torch.tensor([0, 1, 2, 0])
    cond = model.denoiser(x, t, y)
    uncond = model.denoiser(x, t, torch.full((4,), 3))
    torch.testing.assert_close(model.predict_eps(x, t, y, 0.0), cond)
    torch.testing.assert_close(model.predict_eps(x, t, y, 2.5), 3.5 * cond - 2.5 * uncond, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(guided_eps(cond, uncond, 0.0), cond)
    torch.testing.assert_close(model.predict_eps(x, t, None), uncond)


@pytest.mark.parametrize("sampler,num_steps", [("ddpm", None), ("ddpm", 5), ("ddim", 7)])
def test_trajectory_layout_and_reproducibility(sampler, num_steps):
    """Does sampling return x_t (S+1, n, ...), x0_pred (S, n, ...), t (S,), start at the generator's noise, end
    at the samples, and give the same samples for the same seed?"""
    model = tiny(num_classes=2)
    S = num_steps or 20
    g = torch.Generator().manual_seed(4)
    samples, traj = model.sample(3, y=1, sampler=sampler, num_steps=num_steps, generator=g, return_trajectory=True)
    assert samples.shape == (3, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    assert traj["x_t"].shape == (S + 1, 3, 1, 8, 8)
    assert traj["x0_pred"].shape == (S, 3, 1, 8, 8)
    assert traj["t"].tolist() == sorted(set(traj["t"].tolist()), reverse=True) and len(traj["t"]) == S
    noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(traj["x_t"][0], (noise + 1) / 2)
    torch.testing.assert_close(traj["x_t"][-1].clamp(0, 1), samples)
    again = model.sample(3, y=1, sampler=sampler, num_steps=num_steps, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(again, samples, atol=0, rtol=0)


def test_2d_model_samples_and_trajectory():
    """Does the 2D model sample raw points (n, 2) with a trajectory (S+1, n, 2)?"""
    model = tiny("2d")
    pts, traj = model.sample(6, sampler="ddim", num_steps=4, generator=torch.Generator().manual_seed(0),
                             return_trajectory=True)
    assert pts.shape == (6, 2) and traj["x_t"].shape == (5, 6, 2) and traj["x0_pred"].shape == (4, 6, 2)
    torch.testing.assert_close(traj["x_t"][-1], pts)


def test_forward_trajectory_is_q_sample_with_one_shared_eps():
    """Is each frame of forward_trajectory q_sample(x0, t, eps) with one eps (from the generator) for all t?"""
    model = tiny(T=100)
    x = torch.rand(3, 1, 8, 8)
    ts = [0, 10, 50, 99]
    frames = model.forward_trajectory(x, ts, generator=torch.Generator().manual_seed(1))
    assert frames.shape == (4, 3, 1, 8, 8)
    eps = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for k, t in enumerate(ts):
        ab = model.schedule.alpha_bar[t]
        ref = (ab.sqrt() * (2 * x - 1) + (1 - ab).sqrt() * eps + 1) / 2
        torch.testing.assert_close(frames[k], ref)
    with pytest.raises(ValueError, match="ts"):
        model.forward_trajectory(x, [100])


def test_loss_uses_the_injected_pieces_and_they_enter_the_cache_key():
    """Does loss call the injected q_sample_fn and loss_fn, with [0, 1] images scaled to [-1, 1]; does
    cache_key change with them?"""
    seen = {}

    def my_q_sample(x0, t, eps, alpha_bar):
        seen["x0"] = x0
        return q_sample(x0, t, eps, alpha_bar)

    def my_loss(eps_pred, eps):
        return (eps_pred - eps).abs().mean()

    base = tiny()
    model = DDPM(base.config, q_sample_fn=my_q_sample, loss_fn=my_loss)
    x = torch.rand(4, 1, 8, 8)
    loss, logs = model.loss(x)
    torch.testing.assert_close(seen["x0"], 2 * x - 1)
    assert loss.dim() == 0 and isinstance(logs["eps_mse"], float)
    assert model.cache_key() != base.cache_key()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    torch.testing.assert_close(base.loss(x, generator=g1)[0], base.loss(x, generator=g2)[0])


def test_sample_rejects_inconsistent_arguments():
    """Are eta with DDPM, guidance without labels, labels for an unconditional model, a wrong number of labels
    and an unknown sampler refused?"""
    model = tiny()
    with pytest.raises(ValueError, match="eta"):
        model.sample(2, eta=0.5)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, y=1)
    with pytest.raises(ValueError, match="labels"):
        tiny(num_classes=2).sample(2, guidance_scale=1.0)
    with pytest.raises(ValueError, match="n = 2 labels"):
        tiny(num_classes=2).sample(2, y=torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="sampler"):
        model.sample(2, sampler="euler")


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_overfit_one_batch():
    """Can the UNet memorise the noise of one fixed batch (same x0, t, eps every step): loss below 5% of its start?"""
    torch.manual_seed(0)
    model = DDPM(DDPMConfig(kind="image", T=100, widths=(8, 16), num_classes=10))
    x, y = load_digits("train")[:16]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        loss, _ = model.loss((x, y), generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])


@pytest.mark.slow
def test_2d_ddpm_learns_eight_gaussians():
    """After a short training run on 8 gaussians, do DDPM and DDIM samples lie near the modes and cover them?"""
    from gmlib.train import fit

    torch.manual_seed(0)
    model = DDPM(DDPMConfig(kind="2d", T=500, schedule="linear", widths=(256, 256, 256)))
    data = sample_toy2d("8gaussians", 4096, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(data, batch_size=256, shuffle=True)
    fit(model, loader, epochs=200, lr=2e-3, max_steps=2000, device="cpu", progress=False)
    for sampler, steps in (("ddpm", None), ("ddim", 50)):
        pts = model.sample(1000, sampler=sampler, num_steps=steps, generator=torch.Generator().manual_seed(1))
        dist = torch.cdist(pts, EIGHT_GAUSSIANS_CENTRES)  # (n, 8)
        nearest, mode = dist.min(1)
        # the data's own distance to its mode is 0.2 * sqrt(2 ln 2) ~ 0.24 at the median; the modes are 1.5 apart
        assert nearest.median() < 0.4, (sampler, nearest.median())
        counts = torch.bincount(mode, minlength=8)
        assert (counts > 40).all(), (sampler, counts)  # 125 each for a perfect sampler


def test_ema_callback_averages_the_weights():
    """Does the EMA callback keep d * shadow + (1 - d) * weights per step (warmed-up d) and copy it back?"""
    from gmlib.models.ddpm import EMA

    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = EMA(net, decay=0.5)
    expected = 0.0
    for step, value in enumerate([1.0, 2.0, 3.0], start=1):
        with torch.no_grad():
            net.weight.fill_(value)
        ema(net, step, {})
        d = min(0.5, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * value
    ema.copy_to_model()
    torch.testing.assert_close(net.weight, torch.full((1, 2), expected))
