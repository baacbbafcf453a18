"""VQ-VAE: nearest-code quantisation by brute force, the straight-through and stop-gradient wiring by autograd,
perplexity by torch.distributions, the index-grid API and priors, and (slow) that it overfits one batch."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical

from gmlib.models.vqvae import (
    VQVAE,
    VQVAEConfig,
    indices_to_levels,
    levels_to_indices,
    perplexity,
    straight_through,
    vector_quantize,
    vq_losses,
)

EXACT = "donot_use_mm_for_euclid_dist"  # cdist by differences, not by the |a|^2 - 2ab + |b|^2 expansion


def _tiny(**kw) -> VQVAE:
    cfg = dict(codebook_size=8, code_dim=4, channels=8, num_downsamples=1, num_res_blocks=1)
    cfg.update(kw)
    return VQVAE(VQVAEConfig(**cfg))


# ------------------------------------------------------------------------------------------------ the pieces
def test_vector_quantize_picks_the_nearest_code():
    """Are the indices the argmin of torch.cdist over the codebook, for a (B, D, h, w) grid and for (N, D)?"""
    g = torch.Generator().manual_seed(0)
    z_e = torch.randn(3, 5, 4, 2, generator=g)
    codebook = torch.randn(11, 5, generator=g)
    z_q, idx = vector_quantize(z_e, codebook)
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 5)  # (B*h*w, D), position by position
    ref = torch.cdist(vectors, codebook, compute_mode=EXACT).argmin(1)
    assert idx.shape == (3, 4, 2) and idx.dtype == torch.long
    assert torch.equal(idx.flatten(), ref)
    for b, i, j in [(0, 0, 0), (2, 3, 1), (1, 2, 0)]:
        torch.testing.assert_close(z_q[b, :, i, j], codebook[idx[b, i, j]])
    flat_q, flat_idx = vector_quantize(vectors, codebook)
    assert torch.equal(flat_idx, ref)
    torch.testing.assert_close(flat_q, codebook[ref])


def test_vector_quantize_returns_a_code_itself_exactly():
    """When z_e already equals a code, is that code chosen?"""
    codebook = torch.randn(6, 3)
    z_q, idx = vector_quantize(codebook[[4, 1, 1, 0]], codebook)
    assert idx.tolist() == [4, 1, 1, 0]


def test_straight_through_passes_the_gradient_of_z_q_to_z_e():
    """Is z_q_st equal to z_q forward, and is dL/dz_e through it exactly dL/dz_q for a nonlinear L?"""
    z_e = torch.randn(2, 3, 4, 4, requires_grad=True)
    codebook = torch.randn(5, 3)
    z_q, _ = vector_quantize(z_e.detach(), codebook)
    out = straight_through(z_e, z_q)
    torch.testing.assert_close(out, z_q)

    def loss_of(z):
        return (torch.sin(z) * z.pow(2)).sum()

    loss_of(out).backward()
    z_q_leaf = z_q.clone().requires_grad_(True)
    (grad_q,) = torch.autograd.grad(loss_of(z_q_leaf), z_q_leaf)
    torch.testing.assert_close(z_e.grad, grad_q)


def test_codebook_loss_trains_only_the_codebook_and_commitment_only_the_encoder():
    """Do the gradients of ||sg[z_e] - e||^2 reach only e, and those of ||z_e - sg[e]||^2 only z_e, with the
    values of both equal to the mean squared distance?"""
    z_e = torch.randn(2, 3, 4, 4, requires_grad=True)
    codebook = torch.randn(5, 3, requires_grad=True)
    _, idx = vector_quantize(z_e.detach(), codebook.detach())
    z_q = codebook[idx].permute(0, 3, 1, 2)  # (B, D, h, w), differentiable in the codebook
    cb, cm = vq_losses(z_e, z_q)
    ref = (z_e - z_q).pow(2).mean()
    torch.testing.assert_close(cb, ref)
    torch.testing.assert_close(cm, ref)
    g_ze, g_cb = torch.autograd.grad(cb, (z_e, codebook), allow_unused=True, retain_graph=True)
    assert g_ze is None and g_cb is not None and g_cb.abs().sum() > 0
    g_ze, g_cb = torch.autograd.grad(cm, (z_e, codebook), allow_unused=True)
    assert g_cb is None and g_ze.abs().sum() > 0
    # and the encoder gradient is the analytic one: d/dz_e mean (z_e - e)^2 = 2 (z_e - e) / numel
    torch.testing.assert_close(g_ze, 2 * (z_e - z_q).detach() / z_e.numel())


def test_perplexity_of_uniform_use_is_k_and_matches_the_entropy():
    """Is the perplexity K for uniform code use, 1 for one code, and exp(entropy) of the histogram otherwise?"""
    k = 16
    assert perplexity(torch.arange(k).repeat(5), k).item() == pytest.approx(k)
    assert perplexity(torch.full((3, 4, 4), 7), k).item() == pytest.approx(1.0)
    idx = torch.randint(0, 5, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    probs = torch.bincount(idx.flatten(), minlength=k).float()
    ref = Categorical(probs=probs / probs.sum()).entropy().exp()
    torch.testing.assert_close(perplexity(idx, k), ref)


def test_levels_round_trip():
    """Do indices survive the grey-level view k / (K - 1) and back?"""
    idx = torch.randint(0, 32, (4, 2, 2))
    levels = indices_to_levels(idx, 32)
    assert levels.shape == (4, 1, 2, 2) and levels.min() >= 0 and levels.max() <= 1
    assert torch.equal(levels_to_indices(levels, 32), idx)


# ------------------------------------------------------------------------------------------------ the model
@pytest.mark.parametrize("num_downsamples, grid", [(1, (4, 4)), (2, (2, 2))])
def test_index_grid_shapes(num_downsamples, grid):
    """Do 8x8 digits give a 4x4 (one stage) or 2x2 (two stages) grid, and do indices decode to images?"""
    model = _tiny(num_downsamples=num_downsamples).eval()
    x = torch.rand(3, 1, 8, 8)
    idx = model.encode_indices(x)
    assert model.grid_shape == grid and idx.shape == (3, *grid) and idx.dtype == torch.long
    assert idx.min() >= 0 and idx.max() < 8
    img = model.decode_indices(idx)
    assert img.shape == (3, 1, 8, 8) and img.min() >= 0 and img.max() <= 1
    torch.testing.assert_close(model.reconstruct(x), img)


def test_image_shapes_other_than_digits():
    """Does the model work on 28x28 and 3x32x32 images?"""
    for shape in [(1, 28, 28), (3, 32, 32)]:
        model = _tiny(image_shape=shape, num_downsamples=2)
        loss, _ = model.loss(torch.rand(2, *shape))
        assert torch.isfinite(loss) and model.sample(2).shape == (2, *shape)


@pytest.mark.parametrize("kind", ["mse", "bce"])
def test_loss_is_reconstruction_plus_codebook_plus_beta_commitment(kind):
    """Is the loss rec + codebook + beta * commitment recomputed by hand, and do the codebook's gradients
    equal those of the codebook term alone (reconstruction and commitment never reach it)?"""
    torch.manual_seed(0)
    model = _tiny(beta=0.7, reconstruction=kind)
    x = torch.rand(4, 1, 8, 8)
    loss, logs = model.loss(x)
    loss.backward()
    z_e = model.encode(x)
    _, idx = vector_quantize(z_e.detach(), model.codebook.detach())
    z_q = model.codebook[idx].permute(0, 3, 1, 2)
    logits = model.decode(z_q.detach())
    if kind == "mse":
        rec = (torch.sigmoid(logits) - x).pow(2).mean()
    else:
        rec = -(x * torch.nn.functional.logsigmoid(logits) + (1 - x) * torch.nn.functional.logsigmoid(-logits)).mean()
    dist = (z_e - z_q).pow(2).mean()
    torch.testing.assert_close(loss, rec + dist + 0.7 * dist)
    assert logs["rec"] == pytest.approx(rec.item(), rel=1e-5)
    assert logs["codebook"] == pytest.approx(dist.item(), rel=1e-5)
    (g_cb,) = torch.autograd.grad((z_e.detach() - z_q).pow(2).mean(), model.codebook)
    torch.testing.assert_close(model.codebook.grad, g_cb)
    assert 1 <= logs["perplexity"] <= 8


def test_ema_codebook_moves_to_the_mean_of_its_vectors():
    """With EMA and decay 0, is each used code the mean of the encoder outputs assigned to it, and is the
    codebook a buffer (no gradient, no codebook term in the loss)?"""
    torch.manual_seed(0)
    model = _tiny(ema=True, ema_decay=0.0, init_from_data=False)
    assert "codebook" not in dict(model.named_parameters()) and "codebook" in model.state_dict()
    x = torch.rand(6, 1, 8, 8)
    old = model.codebook.clone()
    with torch.no_grad():
        z_e = model.encode(x)
    _, idx = vector_quantize(z_e, old)
    loss, logs = model.loss(x)
    vectors = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    for k in idx.unique():
        mean = vectors[idx.flatten() == k].mean(0)
        torch.testing.assert_close(model.codebook[k], mean, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        logits = model.decode(old[idx].permute(0, 3, 1, 2))
    rec = (torch.sigmoid(logits) - x).pow(2).mean()
    torch.testing.assert_close(loss, rec + model.config.beta * (z_e - old[idx].permute(0, 3, 1, 2)).pow(2).mean())


def test_first_training_step_puts_the_codes_on_encoder_outputs():
    """Does the first training loss set every code to a distinct encoder output of the batch, once only?"""
    torch.manual_seed(0)
    model = _tiny()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        vectors = model.encode(x).permute(0, 2, 3, 1).reshape(-1, 4)  # (64, D)
    model.loss(x)
    dist = torch.cdist(model.codebook.detach(), vectors, compute_mode=EXACT)  # (K, 64)
    assert dist.min(1).values.max() < 1e-5
    assert len(set(dist.argmin(1).tolist())) == 8
    assert bool(model.codebook_initialized)
    after_first = model.codebook.detach().clone()
    model.loss(torch.rand(4, 1, 8, 8))
    torch.testing.assert_close(model.codebook.detach(), after_first)  # no optimiser step, no second init


def test_eval_mode_leaves_the_codebook_alone():
    """Does a loss computed in eval mode (e.g. on held-out data) leave the EMA codebook and usage unchanged?"""
    model = _tiny(ema=True, dead_code_threshold=0.5).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.loss(torch.rand(4, 1, 8, 8))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_dead_codes_are_moved_onto_encoder_outputs():
    """Are codes whose running usage fell below threshold / K reset to vectors of the current batch?"""
    torch.manual_seed(0)
    model = _tiny(dead_code_threshold=0.5, init_from_data=False)
    model.code_usage.fill_(1.0 / 8)
    model.code_usage[[2, 5]] = 0.0  # these two are dead before the step
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        vectors = model.encode(x).permute(0, 2, 3, 1).reshape(-1, 4)
    model.loss(x)
    for k in (2, 5):
        assert torch.cdist(model.codebook[k][None].detach(), vectors, compute_mode=EXACT).min() < 1e-5
        assert model.code_usage[k] > 0.5 / 8


def test_code_histogram_counts_the_training_codes():
    """Does fit_code_histogram count each position's codes (one per image per position), from a loader too?"""
    model = _tiny().eval()
    x = torch.rand(20, 1, 8, 8)
    idx = model.encode_indices(x)
    counts = model.fit_code_histogram(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x), batch_size=6))
    assert counts.shape == (4, 4, 8) and torch.all(counts.sum(-1) == 20)
    ref = torch.zeros(4, 4, 8)
    for b in range(20):
        for i in range(4):
            for j in range(4):
                ref[i, j, idx[b, i, j]] += 1
    torch.testing.assert_close(counts, ref)
    torch.testing.assert_close(model.fit_code_histogram(x), ref)


def test_histogram_prior_samples_only_seen_codes_and_uniform_uses_all():
    """Does the histogram prior draw, at each position, only codes seen there, with the right frequencies,
    while the uniform prior draws every code?"""
    model = _tiny().eval()
    hist = torch.zeros(4, 4, 8)
    hist[..., 3] = 1.0
    hist[0, 0] = torch.tensor([0, 0, 0, 0, 0, 0, 1.0, 3.0])  # code 7 three times as often as code 6
    model.code_histogram.copy_(hist)
    idx = model.sample_indices(4000, generator=torch.Generator().manual_seed(0))
    assert torch.all(idx[:, 1:, :] == 3) and torch.all(idx[:, 0, 1:] == 3)
    assert set(idx[:, 0, 0].unique().tolist()) == {6, 7}
    assert (idx[:, 0, 0] == 7).float().mean().item() == pytest.approx(0.75, abs=0.03)
    uniform = model.sample_indices(500, prior="uniform", generator=torch.Generator().manual_seed(0))
    assert len(uniform.unique()) == 8
    with pytest.raises(ValueError, match="prior"):
        model.sample(2, prior="pixelcnn")


def test_sample_without_histogram_is_uniform_and_histogram_prior_then_fails():
    """Before fit_code_histogram, is prior=None uniform, and does prior='histogram' say what to call?"""
    model = _tiny().eval()
    a = model.sample_indices(5, generator=torch.Generator().manual_seed(1))
    b = model.sample_indices(5, prior="uniform", generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="fit_code_histogram"):
        model.sample(2, prior="histogram")


def test_sample_with_a_prior_object_in_either_format():
    """Does sample decode a prior's (n, h, w) long indices, and its (n, 1, h, w) levels, to the same images,
    passing the generator on?"""
    model = _tiny().eval()
    grid = torch.randint(0, 8, (3, 4, 4), generator=torch.Generator().manual_seed(0))

    class IndexPrior:
        def sample(self, n, generator=None):
            assert isinstance(generator, torch.Generator)
            return grid[:n]

    class LevelPrior:
        def sample(self, n, generator=None):
            return indices_to_levels(grid[:n], 8)

    g = torch.Generator().manual_seed(0)
    ref = model.decode_indices(grid)
    torch.testing.assert_close(model.sample(3, prior=IndexPrior(), generator=g), ref)
    torch.testing.assert_close(model.sample(3, prior=LevelPrior(), generator=g), ref)

    class WrongPrior:
        def sample(self, n, generator=None):
            return torch.zeros(n, 2, 2, dtype=torch.long)

    with pytest.raises(ValueError, match=r"\(3, 4, 4\)"):
        model.sample(3, prior=WrongPrior())


def test_injected_quantizer_is_used_and_changes_the_cache_key():
    """Does the model quantise with an injected function, and does that change the cache key?"""
    calls = []

    def my_quantize(z_e, codebook):
        calls.append(tuple(z_e.shape))
        return vector_quantize(z_e, codebook)

    model = _tiny()
    mine = VQVAE(model.config, quantize_fn=my_quantize)
    mine.loss(torch.rand(2, 1, 8, 8))
    assert calls == [(2, 4, 4, 4)]
    assert mine.cache_key() != model.cache_key()


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.slow
@pytest.mark.parametrize("ema", [False, True])
def test_vqvae_overfits_one_batch(ema):
    """Does a small VQ-VAE reconstruct one fixed batch of digits well (through its codes), using many codes?"""
    from gmlib.data import load_digits

    torch.manual_seed(0)
    x = load_digits("train").tensors[0][:32]
    model = VQVAE(VQVAEConfig(codebook_size=32, code_dim=8, channels=32, ema=ema, dead_code_threshold=0.1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        opt.zero_grad()
        loss, logs = model.loss(x)
        loss.backward()
        opt.step()
    model.eval()
    err = (model.reconstruct(x) - x).pow(2).mean().item()
    assert err < 0.015, err
    assert perplexity(model.encode_indices(x), 32).item() > 4  # no collapse onto a code or two
    assert math.isfinite(logs["perplexity"])
