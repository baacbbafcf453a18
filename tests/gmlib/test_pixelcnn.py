"""Masked convolutions and the PixelCNN against independent references: hand-written masks, autograd
gradients (causality, blind spot), brute-force enumeration of tiny images, torch.distributions."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.distributions import Categorical

from gmlib.models.pixelcnn import (
    PixelCNN,
    PixelCNNConfig,
    categorical_log_prob,
    categorical_nll,
    nats_to_bits_per_dim,
    raster_order,
    sample_categorical,
    sample_pixels,
    to_levels,
)
from gmlib.nn.masked import MaskedConv2d, causal_mask
from gmlib.nn.masked import input_gradient_map as gradient_map

VARIANTS = {
    "plain": dict(gated=False),
    "gated": dict(gated=True),
    "plain-conditional": dict(gated=False, num_classes=3),
    "gated-conditional": dict(gated=True, num_classes=3),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not stall when other processes load the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(image_shape=(1, 3, 3), levels=2, seed=0, **kw) -> PixelCNN:
    torch.manual_seed(seed)
    kw = {"channels": 8, "num_layers": 2, "first_kernel_size": 3, "kernel_size": 3, **kw}
    return PixelCNN(PixelCNNConfig(image_shape=image_shape, levels=levels, **kw)).double().eval()


def all_images(image_shape, levels) -> torch.Tensor:
    """Every image on the levels grid: (levels^D, C, H, W) float64."""
    d = math.prod(image_shape)
    grid = torch.tensor(list(itertools.product(range(levels), repeat=d)), dtype=torch.float64)
    return (grid / (levels - 1)).view(-1, *image_shape)


def labels_for(model, n):
    return torch.arange(n) % model.config.num_classes if model.config.num_classes else None


# ---------------------------------------------------------------------------------------------- masks
def test_causal_masks_match_hand_written_ones():
    """Are masks A and B (3x3 and 5x5) the hand-written raster-order masks, the same for every channel pair?"""
    a3 = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.float32)
    b3 = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=torch.float32)
    b5 = torch.tensor(
        [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.float32
    )
    a5 = b5.clone()
    a5[2, 2] = 0
    for k, mask_type, ref in [(3, "A", a3), (3, "B", b3), (5, "A", a5), (5, "B", b5)]:
        m = causal_mask(k, mask_type, 2, 4)
        assert m.shape == (4, 2, k, k)
        torch.testing.assert_close(m, ref.expand(4, 2, k, k))


def test_causal_mask_rejects_bad_arguments():
    """Are an unknown mask type and an even kernel (no centre) refused?"""
    with pytest.raises(ValueError, match="mask_type"):
        causal_mask(3, "C", 1, 1)
    with pytest.raises(ValueError, match="odd"):
        causal_mask(4, "A", 1, 1)


def test_masked_conv_output_ignores_the_current_and_later_pixels():
    """Does a mask-A convolution's output at each pixel ignore that pixel and all later ones (mask B: later only)?"""
    torch.manual_seed(0)
    h, w = 4, 5
    for mask_type in ("A", "B"):
        conv = MaskedConv2d(2, 3, 3, mask_type).double()
        for r, c in [(0, 0), (1, 2), (3, 4), (2, 0)]:
            x = torch.randn(1, 2, h, w, dtype=torch.float64, requires_grad=True)
            (g,) = torch.autograd.grad(conv(x)[0, :, r, c].sum(), x)
            seen = g.abs().sum(dim=(0, 1)) != 0  # (H, W)
            later = torch.arange(h * w).view(h, w) > r * w + c
            assert not seen[later].any()
            assert bool(seen[r, c]) == (mask_type == "B")


def test_masked_weights_get_no_gradient():
    """Do the weights cut by the mask receive exactly zero gradient?"""
    conv = MaskedConv2d(2, 3, 5, "A")
    conv(torch.randn(4, 2, 6, 6)).pow(2).sum().backward()
    assert (conv.weight.grad[conv.mask == 0] == 0).all()
    assert (conv.weight.grad[conv.mask == 1] != 0).any()


def test_injected_mask_fn_builds_the_masks():
    """Does PixelCNN(mask_fn=...) use the given function for every masked layer, and does cache_key change?"""
    calls = []

    def my_mask(kernel_size, mask_type, in_channels, out_channels):
        calls.append(mask_type)
        return causal_mask(kernel_size, mask_type, in_channels, out_channels)

    cfg = PixelCNNConfig(image_shape=(1, 4, 4), levels=2, channels=4, num_layers=2)
    model = PixelCNN(cfg, mask_fn=my_mask)
    assert calls == ["A", "B", "B"]
    assert model.cache_key() != PixelCNN(cfg).cache_key()


# ---------------------------------------------------------------------------------------------- causality
def test_input_gradient_map_of_a_plain_convolution_is_its_window():
    """Is the map of an unmasked 3x3 convolution nonzero exactly on the 3x3 window around (row, col) (clipped
    at the border), shaped (H, W), and is the caller's x left untouched?"""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1).double()
    x = torch.randn(4, 2, 5, 6, dtype=torch.float64)
    before = x.clone()
    for r, c in [(0, 0), (2, 3), (4, 5)]:
        m = gradient_map(conv, x, r, c)
        assert m.shape == (5, 6) and (m >= 0).all()
        window = torch.zeros(5, 6, dtype=torch.bool)
        window[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
        assert torch.equal(m != 0, window)
    assert torch.equal(x, before) and not x.requires_grad


def test_input_gradient_map_uses_magnitudes_per_example():
    """Do gradients of opposite sign in two examples add up instead of cancelling, and is the value the sum of
    |d out / d x| computed by hand for a linear map?"""
    sign = torch.tensor([1.0, -1.0], dtype=torch.float64)[:, None, None, None]
    fn = lambda x: 3.0 * sign * x.roll(1, dims=-1)  # noqa: E731 - output (r, c) = 3 * sign * x(r, c - 1)
    m = gradient_map(fn, torch.randn(2, 1, 3, 4, dtype=torch.float64), 1, 2)
    expected = torch.zeros(3, 4, dtype=torch.float64)
    expected[1, 1] = 6.0
    torch.testing.assert_close(m, expected)
    assert not gradient_map(lambda x: torch.zeros_like(x) + 1.0, torch.randn(1, 1, 2, 2), 0, 0).any()


def test_input_gradient_map_agrees_with_the_model_check():
    """Does gmlib's input_gradient_map on PixelCNN.network mark the same pixels as this file's own check?"""
    model = tiny((1, 5, 5), levels=4, num_layers=3)
    u = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    for r, c in [(1, 1), (3, 2)]:
        assert torch.equal(gradient_map(model.network, u, r, c) != 0, input_gradient_map(model, r, c))


def input_gradient_map(model: PixelCNN, r: int, c: int) -> torch.Tensor:
    """(H, W) bool: which input pixels the logits of output pixel (r, c) (all levels, all channels) depend on."""
    shape = model.config.image_shape
    u = torch.randn(2, *shape, dtype=torch.float64, requires_grad=True)
    y = labels_for(model, 2)
    out = model.network(u, y)[:, :, :, r, c]  # (2, L, C)
    (g,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), u)
    return g.abs().sum(dim=(0, 1)) != 0


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_output_pixel_depends_only_on_earlier_pixels(variant):
    """Is the gradient of output pixel i w.r.t. the input zero at pixel i and every later pixel, and nonzero
    for some earlier pixel, for several i (first layer mask A, then mask B)?"""
    model = tiny((1, 5, 5), levels=4, num_layers=3, **VARIANTS[variant])
    h, w = 5, 5
    for r, c in [(0, 1), (1, 0), (2, 2), (3, 4), (4, 4)]:
        seen = input_gradient_map(model, r, c)
        not_before = torch.arange(h * w).view(h, w) >= r * w + c
        assert not seen[not_before].any(), f"pixel {(r, c)} sees itself or a later pixel"
        assert seen[~not_before].any(), f"pixel {(r, c)} sees no earlier pixel"


def test_first_pixel_sees_nothing():
    """Do the first pixel's logits ignore the whole image (its distribution is the same for every input)?"""
    for gated in (False, True):
        model = tiny((1, 4, 4), levels=3, gated=gated)
        assert not input_gradient_map(model, 0, 0).any()


def test_gated_pixelcnn_has_no_blind_spot():
    """With 3x3 kernels, does the pixel two columns right in the row above reach the output in the gated model,
    while it is in the plain model's blind spot; and does the pixel directly above-right reach both? With enough
    layers, does the gated model see EVERY earlier pixel?"""
    r, c = 2, 1
    for gated in (False, True):
        model = tiny((1, 5, 5), levels=4, num_layers=3, gated=gated)
        seen = input_gradient_map(model, r, c)
        assert seen[r - 1, c + 1], "the pixel directly above-right must be in the receptive field"
        assert bool(seen[r - 1, c + 2]) == gated, "plain: blind spot at (r-1, c+2); gated: no blind spot"
    model = tiny((1, 5, 5), levels=4, num_layers=3, gated=True)
    for r, c in [(4, 0), (3, 2), (2, 1)]:
        seen = input_gradient_map(model, r, c)
        before = torch.arange(25).view(5, 5) < r * 5 + c
        assert seen[before].all(), f"gated model: an earlier pixel is invisible to {(r, c)}"


# ---------------------------------------------------------------------------------------------- likelihood
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_log_prob_equals_chain_of_conditionals_on_partial_images(variant):
    """Is log p(x) the sum over pixels i of log p(x_i | x_<i), each conditional read from a forward pass on an
    image where only the pixels before i are filled (the rest random)?"""
    model = tiny((1, 3, 3), levels=3, **VARIANTS[variant])
    g = torch.Generator().manual_seed(1)
    k = torch.randint(0, 3, (4, 1, 3, 3), generator=g)
    x = k.double() / 2
    y = labels_for(model, 4)
    total = torch.zeros(4, dtype=torch.float64)
    for i, (r, c) in enumerate(raster_order(3, 3).tolist()):
        partial = torch.randint(0, 3, k.shape, generator=g)  # random content at and after pixel i
        partial.view(4, -1)[:, :i] = k.view(4, -1)[:, :i]
        log_p = torch.log_softmax(model(partial.double() / 2, y)[:, :, 0, r, c], dim=1)  # (4, L)
        total += log_p.gather(1, k[:, 0, r, c][:, None]).squeeze(1)
    torch.testing.assert_close(model.log_prob(x, y), total)


@pytest.mark.parametrize(
    ("image_shape", "levels", "variant"),
    [
        ((1, 3, 3), 2, "plain"),
        ((1, 3, 3), 2, "gated"),
        ((1, 3, 3), 2, "plain-conditional"),
        ((1, 3, 3), 2, "gated-conditional"),
        ((1, 2, 2), 3, "plain"),
        ((2, 2, 2), 2, "gated"),  # two channels: conditionally independent within a pixel
    ],
)
def test_probabilities_of_all_images_sum_to_one(image_shape, levels, variant):
    """Brute force: do the probabilities of ALL levels^D images of a tiny random model sum to 1?"""
    model = tiny(image_shape, levels=levels, **VARIANTS[variant])
    x = all_images(image_shape, levels)
    y = torch.full((x.shape[0],), 2) if model.config.num_classes else None
    with torch.no_grad():
        total = model.log_prob(x, y).logsumexp(0).exp()
    torch.testing.assert_close(total, torch.tensor(1.0, dtype=torch.float64))


def test_categorical_log_prob_matches_torch_distributions():
    """Is categorical_log_prob the sum of Categorical(logits).log_prob over channels and pixels, and
    categorical_nll its negative?"""
    logits = torch.randn(3, 5, 2, 4, 4)
    k = torch.randint(0, 5, (3, 2, 4, 4))
    ref = Categorical(logits=logits.movedim(1, -1)).log_prob(k).flatten(1).sum(1)
    torch.testing.assert_close(categorical_log_prob(logits, k), ref)
    torch.testing.assert_close(categorical_nll(logits, k), -ref)


def test_injected_nll_fn_gives_the_likelihood():
    """Does PixelCNN(nll_fn=...) compute log_prob as -nll_fn(logits, k), with its code in cache_key (and no
    new key without it); is passing both nll_fn and log_prob_fn refused?"""
    calls = []

    def my_nll(logits, k):
        calls.append(tuple(logits.shape))
        return -Categorical(logits=logits.movedim(1, -1)).log_prob(k).flatten(1).sum(1)

    cfg = PixelCNNConfig(image_shape=(1, 4, 4), levels=3, channels=4, num_layers=1)
    torch.manual_seed(0)
    plain = PixelCNN(cfg)
    torch.manual_seed(0)
    mine = PixelCNN(cfg, nll_fn=my_nll)
    x = torch.randint(0, 3, (2, 1, 4, 4)).float() / 2
    torch.testing.assert_close(mine.log_prob(x), plain.log_prob(x))
    assert calls == [(2, 3, 1, 4, 4)]
    assert set(plain.cache_key()) == {"mask_fn", "log_prob_fn"} and "nll_fn" in mine.cache_key()
    with pytest.raises(ValueError, match="not both"):
        PixelCNN(cfg, nll_fn=my_nll, log_prob_fn=categorical_log_prob)


def test_bits_per_dim_is_nll_over_d_ln2():
    """Is bits/dim = -log p(x) / (D ln 2), with log p from torch.distributions, and does loss log the same?"""
    model = tiny((1, 4, 4), levels=5, gated=True)
    x = torch.randint(0, 5, (6, 1, 4, 4)).double() / 4
    with torch.no_grad():
        logits = model(x)
        ref_nats = -Categorical(logits=logits.movedim(1, -1)).log_prob(to_levels(x, 5)).flatten(1).sum(1)
        bpd = model.bits_per_dim(x)
        loss, logs = model.loss(x)
    torch.testing.assert_close(bpd, ref_nats / (16 * math.log(2)))
    torch.testing.assert_close(loss, ref_nats.mean())
    assert logs["bits_per_dim"] == pytest.approx(float(ref_nats.mean()) / (16 * math.log(2)))
    assert nats_to_bits_per_dim(16 * math.log(2), 16) == pytest.approx(1.0)


def test_untrained_uniform_model_has_log2_levels_bits_per_dim():
    """With zero output weights (uniform conditionals), is bits/dim exactly log2(levels)?"""
    model = tiny((1, 4, 4), levels=17)
    torch.nn.init.zeros_(model.head[-1].weight)
    torch.nn.init.zeros_(model.head[-1].bias)
    x = torch.randint(0, 17, (3, 1, 4, 4)).double() / 16
    torch.testing.assert_close(model.bits_per_dim(x), torch.full((3,), math.log2(17), dtype=torch.float64))


def test_off_grid_inputs_are_refused():
    """Are dequantized or out-of-range images refused with a message naming the grid?"""
    model = tiny((1, 3, 3), levels=17)
    with pytest.raises(ValueError, match="grid"):
        model.log_prob(torch.full((1, 1, 3, 3), 0.51))
    with pytest.raises(ValueError, match="grid"):
        to_levels(torch.full((1, 1, 3, 3), 1.0625), 17)


def test_conditional_model_needs_labels():
    """Does a class-conditional model without labels raise a clear error?"""
    model = tiny(num_classes=3)
    with pytest.raises(ValueError, match="labels"):
        model.loss(torch.zeros(2, 1, 3, 3, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------- sampling
def test_raster_order():
    """Is the order row by row, left to right, and is it the model's order()?"""
    assert raster_order(2, 3).tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert torch.equal(tiny((1, 2, 3)).order(), raster_order(2, 3))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sampling_is_reproducible_with_a_generator(variant):
    """Do equal generator seeds give equal samples (and different seeds different ones), on the levels grid?"""
    model = tiny((1, 4, 4), levels=5, **VARIANTS[variant])
    y = labels_for(model, 6)
    a = model.sample(6, y=y, generator=torch.Generator().manual_seed(3))
    b = model.sample(6, y=y, generator=torch.Generator().manual_seed(3))
    c = model.sample(6, y=y, generator=torch.Generator().manual_seed(4))
    assert a.shape == (6, 1, 4, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a * 4, (a * 4).round())


def test_sample_pixels_follows_the_model_and_matches_its_sample():
    """Brute force: do sample_pixels' frequencies over all 16 binary 2x2 images match exp(log_prob); does it
    draw exactly what PixelCNN.sample draws from the same generator (levels k, int64)?"""
    model = tiny((1, 2, 2), levels=2, seed=3)
    with torch.no_grad():
        for p in model.head[-1].parameters():
            p.mul_(8.0)
        probs = model.log_prob(all_images((1, 2, 2), 2)).exp()  # (16,)
    n = 20_000
    with torch.no_grad():
        k = sample_pixels(model.logits_from_levels, n, 2, 2, generator=torch.Generator().manual_seed(0))
    assert k.shape == (n, 1, 2, 2) and k.dtype == torch.long
    index = (k.view(n, 4) * torch.tensor([8, 4, 2, 1])).sum(1)
    freq = torch.bincount(index, minlength=16).double() / n
    assert (freq - probs).abs().max() < 4 * math.sqrt(0.25 / n)
    model3 = tiny((1, 3, 4), levels=5, gated=True)
    with torch.no_grad():
        k3 = sample_pixels(model3.logits_from_levels, 6, 3, 4, generator=torch.Generator().manual_seed(7))
    x3 = model3.sample(6, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(k3.double() / 4, x3)


def test_sampling_ignores_dropout_and_keeps_the_mode():
    """Does a model with dropout, left in training mode, sample reproducibly and stay in training mode?"""
    for gated in (False, True):
        model = tiny((1, 3, 3), levels=4, gated=gated, dropout=0.5).train()
        a = model.sample(4, generator=torch.Generator().manual_seed(0))
        b = model.sample(4, generator=torch.Generator().manual_seed(0))
        assert torch.equal(a, b) and model.training


def test_samples_follow_the_model_distribution():
    """Brute force: do sample frequencies over all 16 binary 2x2 images match exp(log_prob)?"""
    model = tiny((1, 2, 2), levels=2)
    with torch.no_grad():
        for p in model.head[-1].parameters():
            p.mul_(8.0)  # a less uniform model, so the test has power
        probs = model.log_prob(all_images((1, 2, 2), 2)).exp()  # (16,)
    n = 20_000
    s = model.sample(n, generator=torch.Generator().manual_seed(0))
    index = (s.view(n, 4).long() * torch.tensor([8, 4, 2, 1])).sum(1)  # the same order as all_images
    freq = torch.bincount(index, minlength=16).double() / n
    assert (freq - probs).abs().max() < 4 * math.sqrt(0.25 / n)


def test_trajectory_fills_one_pixel_per_frame():
    """Is the trajectory (H*W+1, n, C, H, W) from the empty image to the sample, frame t holding exactly the
    first t pixels in raster order; does a stride keep every stride-th frame and the last?"""
    model = tiny((1, 3, 4), levels=3, gated=True)
    x, traj = model.sample(5, generator=torch.Generator().manual_seed(0), return_trajectory=True)
    assert traj.shape == (13, 5, 1, 3, 4)
    assert (traj[0] == 0).all() and torch.equal(traj[-1], x)
    flat_x, flat_t = x.view(5, 12), traj.view(13, 5, 12)
    for t in range(13):
        torch.testing.assert_close(flat_t[t, :, :t], flat_x[:, :t])
        assert (flat_t[t, :, t:] == 0).all()
    x2, traj5 = model.sample(5, generator=torch.Generator().manual_seed(0), return_trajectory=True, trajectory_stride=5)
    assert torch.equal(x2, x)
    torch.testing.assert_close(traj5, traj[[0, 5, 10, 12]])


def test_low_temperature_approaches_greedy_decoding():
    """Does sampling at temperature -> 0 give, for any seed, the greedy image built by hand (argmax of each
    conditional in raster order)?"""
    model = tiny((1, 3, 3), levels=4, gated=True, seed=2)
    greedy = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        for r, c in raster_order(3, 3).tolist():
            greedy[0, 0, r, c] = model(greedy)[0, :, 0, r, c].argmax() / 3
    for seed in (0, 1):
        cold = model.sample(3, generator=torch.Generator().manual_seed(seed), temperature=1e-4)
        torch.testing.assert_close(cold, greedy.expand(3, -1, -1, -1))
    torch.testing.assert_close(model.sample(3, temperature=0.0), greedy.expand(3, -1, -1, -1))


def test_sample_categorical_temperature():
    """Is temperature 0 the argmax, and do draws at temperature 1 follow softmax(logits)?"""
    logits = torch.tensor([[0.0, 1.0, -1.0, 0.5]])
    assert sample_categorical(logits, 0.0).item() == 1
    draws = sample_categorical(logits.expand(40_000, 4), 1.0, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / 40_000
    torch.testing.assert_close(freq, torch.softmax(logits[0], 0), atol=0.01, rtol=0)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.slow
@pytest.mark.parametrize("gated", [False, True])
def test_overfits_one_batch(gated):
    """Does a small PixelCNN drive the NLL of one batch of 17-level digits far below the independent-pixel
    model's, i.e. memorise it?"""
    from gmlib.data import load_digits

    torch.manual_seed(0)
    x = load_digits("train").tensors[0][:16]  # (16, 1, 8, 8), k / 16
    cfg = PixelCNNConfig(levels=17, channels=32, num_layers=3, first_kernel_size=5, gated=gated)
    model = PixelCNN(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(250):
        loss, logs = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # independent-pixel reference: each pixel's empirical level distribution on the batch itself
    k = to_levels(x, 17).view(16, 64)
    freq = torch.stack([torch.bincount(k[:, j], minlength=17) for j in range(64)]).float() / 16  # (64, 17)
    indep_nats = -(freq.gather(1, k.T).log()).sum() / 16
    with torch.no_grad():
        nll = -model.log_prob(x).mean()
    assert nll < 0.5 * indep_nats, (float(nll), float(indep_nats))
