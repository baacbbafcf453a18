"""The RBM's conditionals, free energy, partition function, Gibbs sampler and pseudo-likelihood against brute-force
enumeration of tiny models, and the model contract."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from gmlib.models.rbm import (
    RBM,
    RBMConfig,
    bernoulli_sample,
    cd_k_loss,
    free_energy,
    gibbs_step,
    log_partition,
    p_h_given_v,
    p_v_given_h,
)


def all_configs(n: int) -> torch.Tensor:
    """Every binary vector of length n: (2^n, n) float64, in itertools order."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def joint_energy(v, h, W, b, c):
    """E(v, h) = -b.v - c.h - v W h for every pair: (Nv, D), (Nh, H) -> (Nv, Nh)."""
    return -(v @ b)[:, None] - (h @ c)[None, :] - v @ W @ h.T


def tiny_rbm(d: int = 4, h: int = 3, scale: float = 1.0, seed: int = 0, **kw) -> RBM:
    torch.manual_seed(seed)
    model = RBM(RBMConfig(num_visible=d, num_hidden=h, image_shape=None, **kw))
    with torch.no_grad():
        model.W.copy_(scale * torch.randn(d, h))
        model.b.copy_(scale * torch.randn(d))
        model.c.copy_(scale * torch.randn(h))
    return model


def brute_log_z(model: RBM) -> float:
    """log sum_{v, h} exp(-E(v, h)) over the full joint."""
    W, b, c = model.W.double(), model.b.double(), model.c.double()
    e = joint_energy(all_configs(model.config.num_visible), all_configs(model.config.num_hidden), W, b, c)
    return torch.logsumexp(-e.flatten(), 0).item()


# ------------------------------------------------------------------------------------------ the pieces
def test_conditionals_match_brute_force_over_the_joint():
    """Are p(h_j = 1 | v) and p(v_i = 1 | h) the ratios of sums of exp(-E(v, h)) over the joint?"""
    model = tiny_rbm(4, 3, scale=1.5)
    W, b, c = model.W.detach().double(), model.b.detach().double(), model.c.detach().double()
    vs, hs = all_configs(4), all_configs(3)
    p = torch.exp(-joint_energy(vs, hs, W, b, c))  # (16, 8) unnormalised joint
    p_h = (p @ hs) / p.sum(1, keepdim=True)  # (16, 3): E[h_j | v]
    p_v = (p.T @ vs) / p.sum(0)[:, None]  # (8, 4): E[v_i | h]
    torch.testing.assert_close(p_h_given_v(vs, W, c), p_h)
    torch.testing.assert_close(p_v_given_h(hs, W, b), p_v)


def test_free_energy_is_minus_log_sum_over_hiddens():
    """Is F(v) = -log sum_h exp(-E(v, h)) (enumerating the hiddens)?"""
    model = tiny_rbm(5, 4, scale=2.0)
    W, b, c = model.W.detach().double(), model.b.detach().double(), model.c.detach().double()
    vs = all_configs(5)
    ref = -torch.logsumexp(-joint_energy(vs, all_configs(4), W, b, c), dim=1)
    torch.testing.assert_close(free_energy(vs, W, b, c), ref)


def test_gibbs_step_is_binary_and_reproducible():
    """Does a Gibbs step return {0, 1} visibles of the input's shape, equal for equal generator seeds?"""
    model = tiny_rbm(6, 3)
    v = torch.ones(10, 6)
    a = gibbs_step(v, model.W, model.b, model.c, generator=torch.Generator().manual_seed(0))
    b = gibbs_step(v, model.W, model.b, model.c, generator=torch.Generator().manual_seed(0))
    assert a.shape == (10, 6) and set(a.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(a, b)


def test_bernoulli_sample_has_the_right_mean():
    """Is the frequency of ones p for each unit?"""
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    x = bernoulli_sample(p.expand(50_000, 5), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x.mean(0), p, atol=0.01, rtol=0)


def test_free_energy_gradient_is_the_cd_statistic():
    """Is grad_W of mean F(v) equal to -v^T p(h | v) / B, the data term of the CD update?"""
    model = tiny_rbm(5, 3)
    v = (torch.rand(7, 5) > 0.5).float()
    free_energy(v, model.W, model.b, model.c).mean().backward()
    ref = -(v.T @ p_h_given_v(v, model.W, model.c)) / 7
    torch.testing.assert_close(model.W.grad, ref.detach())
    torch.testing.assert_close(model.b.grad, -v.mean(0))


def test_cd_k_loss_runs_k_sweeps_from_the_start_and_has_the_cd_gradient():
    """Does cd_k_loss run exactly k sweeps from v_start (not from the data) with the generator, and is the gradient
    of its loss in W the CD rule -<v p(h | v)^T>_data + <v p(h | v)^T>_samples?"""
    model = tiny_rbm(5, 3, scale=1.0)
    seen = []

    def roll(v, *, generator=None):  # a deterministic "sweep": shift the bits by one place
        seen.append(generator)
        return v.roll(1, dims=1)

    v_data = (torch.rand(4, 5, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    v_start = torch.eye(5)[:3]  # (B' = 3, D): not the data
    g = torch.Generator()
    fe = lambda v: free_energy(v, model.W, model.b, model.c)  # noqa: E731
    loss, v_neg = cd_k_loss(v_data, v_start, 3, fe, roll, generator=g)
    torch.testing.assert_close(v_neg, v_start.roll(3, dims=1))
    assert seen == [g, g, g] and not v_neg.requires_grad
    torch.testing.assert_close(loss, fe(v_data).mean() - fe(v_neg).mean())
    (grad_w,) = torch.autograd.grad(loss, model.W)
    stat = lambda v: v.T @ p_h_given_v(v, model.W, model.c) / v.shape[0]  # noqa: E731
    torch.testing.assert_close(grad_w, (-stat(v_data) + stat(v_neg)).detach())
    with pytest.raises(ValueError, match="k"):
        cd_k_loss(v_data, v_start, 0, fe, roll)


def test_injected_cd_loss_is_used_and_changes_the_cache_key():
    """Does the RBM's loss call an injected cd_loss_fn with the chain start (the data for CD, the persistent chains
    for PCD) and k, and store its samples as the persistent chains?"""
    calls = []

    def my_cd(v_data, v_start, k, free_energy_fn, gibbs_fn, *, generator=None):
        calls.append((v_start.clone(), k))
        return cd_k_loss(v_data, v_start, k, free_energy_fn, gibbs_fn, generator=generator)

    x = torch.ones(2, 4)
    for persistent in (False, True):
        cfg = RBMConfig(num_visible=4, num_hidden=2, k=2, persistent=persistent, num_chains=5, image_shape=None)
        torch.manual_seed(0)
        model = RBM(cfg, cd_loss_fn=my_cd)
        start = model.chains.clone() if persistent else x
        model.loss(x)
        torch.testing.assert_close(calls[-1][0], start)
        assert calls[-1][1] == 2
        assert model.cache_key() != RBM(cfg).cache_key()
    assert RBM(cfg).cache_key() == {name: RBM(cfg).cache_key()[name] for name in ("free_energy_fn", "gibbs_step_fn")}


# ------------------------------------------------------------------------------------------ exact quantities
@pytest.mark.parametrize("d,h", [(4, 3), (3, 5), (4, 4)])
def test_log_partition_matches_the_joint_and_both_layers_agree(d, h):
    """Does log Z by enumerating the visibles equal log Z by enumerating the hiddens, and the sum over the joint?"""
    model = tiny_rbm(d, h, scale=1.5)
    by_h = model.log_partition_exact(over="hidden").item()
    by_v = model.log_partition_exact(over="visible").item()
    assert by_h == pytest.approx(by_v, abs=1e-9)
    assert model.log_partition_exact().item() == pytest.approx(brute_log_z(model), abs=1e-9)


def test_pure_log_partition_matches_the_joint_in_float64():
    """Does the pure log_partition(W, b, c) equal brute force over the joint, in the dtype of W?"""
    model = tiny_rbm(5, 3, scale=2.0)
    W, b, c = model.W.detach().double(), model.b.detach().double(), model.c.detach().double()
    out = log_partition(W, b, c)
    assert out.dim() == 0 and out.dtype == torch.float64
    assert out.item() == pytest.approx(brute_log_z(model), abs=1e-9)
    assert log_partition(W, b, c, over="visible").item() == pytest.approx(brute_log_z(model), abs=1e-9)


def test_log_partition_chunks_agree():
    """Is log Z the same when the enumeration is split into small chunks?"""
    model = tiny_rbm(9, 12)
    assert model.log_partition_exact(chunk=7).item() == pytest.approx(model.log_partition_exact().item(), abs=1e-9)


@pytest.mark.parametrize("d,h", [(5, 3), (4, 7)])
def test_exact_probabilities_sum_to_one(d, h):
    """Does exp(log_prob_exact(v)) sum to 1 over all 2^D visible vectors?"""
    model = tiny_rbm(d, h, scale=1.0)
    lp = model.log_prob_exact(all_configs(d).float()).double()
    assert torch.logsumexp(lp, 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(model.log_prob(all_configs(d).float()), lp.float())


def test_intractable_log_partition_is_refused_clearly():
    """Is exact log Z refused with a message naming the 2^20 limit for a digits-sized model?"""
    model = RBM(RBMConfig(num_visible=64, num_hidden=32))
    with pytest.raises(ValueError, match="2\\^32"):
        model.log_partition_exact()
    with pytest.raises(ValueError, match="over must be"):
        model.log_partition_exact(over="both")
    RBM(RBMConfig(num_visible=64, num_hidden=12)).log_partition_exact()  # 2^12 hidden configurations: fine


def test_gibbs_sampling_matches_the_exact_marginal():
    """Do many Gibbs chains of a tiny RBM visit the 2^D visible states with the exact probabilities p(v)
    (total variation < 0.02)?"""
    model = tiny_rbm(4, 3, scale=1.2, seed=1)
    v = model.sample(20_000, generator=torch.Generator().manual_seed(0), num_steps=30)  # (N, 4)
    codes = (v.long() * torch.tensor([8, 4, 2, 1])).sum(1)
    empirical = torch.bincount(codes, minlength=16).double() / len(codes)
    exact = model.log_prob_exact(all_configs(4).float()).double().exp()  # itertools order = binary codes
    tv = 0.5 * (empirical - exact).abs().sum().item()
    assert tv < 0.02, (tv, exact)


def test_pseudo_log_likelihood_matches_its_definition():
    """Is PLL(v) = sum_i log p(v_i | v_-i) with p(v_i | v_-i) = p(v) / (p(v) + p(v with bit i flipped)) from
    exact probabilities, and is the one-flip estimate unbiased?"""
    model = tiny_rbm(5, 3, scale=1.5)
    vs = all_configs(5).float()
    log_p = model.log_prob_exact(vs).double()  # (32,)
    index = {tuple(row.tolist()): k for k, row in enumerate(vs)}
    ref = torch.zeros(32, dtype=torch.float64)
    for k, row in enumerate(vs):
        for i in range(5):
            flipped = row.clone()
            flipped[i] = 1 - flipped[i]
            ref[k] += log_p[k] - torch.logaddexp(log_p[k], log_p[index[tuple(flipped.tolist())]])
    torch.testing.assert_close(model.pseudo_log_likelihood(vs, exact=True).double(), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.pseudo_log_likelihood(vs).double(), ref, atol=1e-5, rtol=1e-5)
    reps = vs[[3, 17, 30]].repeat_interleave(20_000, dim=0)
    est = model.pseudo_log_likelihood(reps, exact=False, generator=torch.Generator().manual_seed(0)).double()
    est = est.reshape(3, -1)
    standard_error = est.std(1) / math.sqrt(est.shape[1])
    assert ((est.mean(1) - ref[[3, 17, 30]]).abs() < 4 * standard_error).all(), (est.mean(1), ref[[3, 17, 30]])


# ------------------------------------------------------------------------------------------ the model
@pytest.mark.parametrize("persistent", [False, True])
def test_rbm_loss_and_gradient(persistent):
    """Is the loss a finite scalar with float logs whose gradient reaches W, b and c, and do PCD chains move?"""
    torch.manual_seed(0)
    model = RBM(RBMConfig(num_visible=64, num_hidden=16, k=2, persistent=persistent, num_chains=10))
    x = (torch.rand(6, 1, 8, 8) > 0.5).float()
    chains = model.chains.clone() if persistent else None
    loss, logs = model.loss((x, torch.zeros(6)))
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert set(logs) == {"cd", "recon", "free_energy"} and all(isinstance(v, float) for v in logs.values())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    if persistent:
        assert model.chains.shape == (10, 64) and not torch.equal(model.chains, chains)


def test_rbm_sample_contract():
    """Are samples (n, 1, 8, 8) binary (or probabilities in [0, 1]), reproducible, with a trajectory of
    num_steps + 1 states ending at the sample?"""
    torch.manual_seed(0)
    model = RBM(RBMConfig(num_visible=64, num_hidden=8))
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    s, traj = model.sample(4, generator=g(), num_steps=5, return_trajectory=True)
    assert s.shape == (4, 1, 8, 8) and traj.shape == (6, 4, 1, 8, 8)
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(traj[-1], s)
    torch.testing.assert_close(model.sample(4, generator=g(), num_steps=5), s)
    p = model.sample(4, generator=g(), num_steps=5, probabilities=True)
    assert p.shape == (4, 1, 8, 8) and 0 <= p.min() and p.max() <= 1 and not torch.equal(p, p.round())


def test_injected_functions_are_used_and_change_the_cache_key():
    """Does the RBM train and sample with injected pieces, and does the cache key follow them?"""
    calls = {"F": 0, "gibbs": 0}

    def my_free_energy(v, W, b, c):
        calls["F"] += 1
        return free_energy(v, W, b, c)

    def my_gibbs(v, W, b, c, *, generator=None):
        calls["gibbs"] += 1
        return gibbs_step(v, W, b, c, generator=generator)

    cfg = RBMConfig(num_visible=4, num_hidden=2, k=3, image_shape=None)
    model = RBM(cfg, free_energy_fn=my_free_energy, gibbs_step_fn=my_gibbs)
    model.loss(torch.ones(2, 4))
    model.sample(2, num_steps=4, generator=torch.Generator().manual_seed(0))
    assert calls == {"F": 3, "gibbs": 7}  # F: the data and the samples in the loss, the data again for the log
    assert model.cache_key() != RBM(cfg).cache_key()
    assert model.cache_key() == RBM(cfg, free_energy_fn=my_free_energy, gibbs_step_fn=my_gibbs).cache_key()


def test_bad_shapes_are_refused():
    """Are a wrong image_shape and a wrong input size refused with clear messages?"""
    with pytest.raises(ValueError, match="image_shape"):
        RBM(RBMConfig(num_visible=10, image_shape=(1, 8, 8)))
    with pytest.raises(ValueError, match="visible units"):
        RBM(RBMConfig(num_visible=64)).loss(torch.ones(2, 10))


def _mean_exact_log_likelihood(model: RBM, data: torch.Tensor) -> float:
    return model.log_prob_exact(data).mean().item()


@pytest.mark.slow
@pytest.mark.parametrize("persistent", [False, True])
def test_contrastive_divergence_increases_the_exact_log_likelihood(persistent):
    """Does CD-1 (and PCD-1) training raise the exact log-likelihood of a tiny RBM on a tiny data set well
    above its start, towards the data's entropy bound?"""
    from gmlib.train import fit

    torch.manual_seed(0)
    patterns = torch.tensor([[1, 1, 1, 0, 0, 0, 1, 0], [0, 0, 0, 1, 1, 1, 0, 1], [1, 0, 1, 0, 1, 0, 1, 0]],
                            dtype=torch.float32)
    data = patterns[torch.randint(0, 3, (300,))]
    model = RBM(RBMConfig(num_visible=8, num_hidden=6, k=1, persistent=persistent, num_chains=64, lr=0.1,
                          momentum=0.5, l2=0.0, image_shape=None))
    before = _mean_exact_log_likelihood(model, data)
    loader = torch.utils.data.DataLoader(data, batch_size=30, shuffle=True, generator=torch.Generator().manual_seed(0))
    fit(model, loader, epochs=60, optimizers=model.optimizers(), device="cpu", progress=False)
    after = _mean_exact_log_likelihood(model, data)
    # start: about -8 log 2 = -5.5 nats; the best possible is the data entropy, about -log 3 = -1.1 nats
    assert before < -5.0 and after > -2.0, (before, after)


@pytest.mark.slow
def test_rbm_overfits_one_batch():
    """Trained on one batch of 16 binarized digits, does the exact log-likelihood of that batch approach
    -log 16 (each image a mode), far above the 64 log 2 = 44 nats of the untrained model?"""
    from gmlib.data import load_digits
    from gmlib.train import fit

    torch.manual_seed(0)
    batch = load_digits("train", "binarized").tensors[0][:16]
    model = RBM(RBMConfig(num_visible=64, num_hidden=16, k=5, persistent=True, num_chains=64, lr=0.1, momentum=0.5,
                          l2=0.0))
    before = _mean_exact_log_likelihood(model, batch)
    fit(model, [batch] * 1500, optimizers=model.optimizers(), device="cpu", progress=False)
    after = _mean_exact_log_likelihood(model, batch)
    assert before < -40 and after > -10, (before, after)
