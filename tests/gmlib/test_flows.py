"""The flow's layers and bookkeeping against independent references: autograd Jacobians, torch.distributions,
numerical quadrature, closed forms, and a fitted Gaussian as a baseline."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, TransformedDistribution
from torch.distributions.transforms import AffineTransform, SigmoidTransform

from gmlib.data import load_digits, sample_toy2d
from gmlib.models.flows import (
    ActNorm,
    AffineCoupling,
    FlowConfig,
    Invertible1x1Conv,
    LogitTransform,
    RealNVP,
    SharedST,
    Squeeze,
    affine_coupling_forward,
    affine_coupling_inverse,
    alternating_masks,
    bits_per_dim,
    channel_mask,
    checkerboard_mask,
    coupling_logdet,
    density_grid,
    dequantize,
    layer_outputs,
    stage_log_prob,
)
from gmlib.nn import MLP
from gmlib.train import fit


# ---------------------------------------------------------------------------------------------- helpers
def jacobian_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    """log |det d fn(x) / dx| per example, from the full autograd Jacobian: x (B, ...) -> (B,)."""
    out = []
    for xi in x:
        def flat(v, shape=xi.shape):
            return fn(v.view(1, *shape))[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(flat, xi.reshape(-1))  # (D, D)
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


@torch.no_grad()
def perturb(module: torch.nn.Module, std: float) -> torch.nn.Module:
    """Move every parameter away from its (near-identity) initialisation, so the tests see a real map."""
    for p in module.parameters():
        p.add_(std * torch.randn_like(p))
    return module


def conv_pair(c: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    def net():
        return torch.nn.Sequential(torch.nn.Conv2d(c, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, c, 3, padding=1))

    return net(), net()


def make_layer(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """A layer with non-trivial parameters (float64) and an input batch for it."""
    torch.manual_seed(0)
    if name == "coupling-2d":
        layer = AffineCoupling(torch.tensor([1.0, 0.0]), MLP(2, (16,), 2), MLP(2, (16,), 2))
        x = torch.randn(3, 2)
    elif name == "coupling-checkerboard":
        layer = AffineCoupling(checkerboard_mask(4, 4), *conv_pair(1))
        x = torch.randn(2, 1, 4, 4)
    elif name == "coupling-channel":
        layer = AffineCoupling(channel_mask(4, invert=True), *conv_pair(4))
        x = torch.randn(2, 4, 2, 2)
    elif name == "coupling-unclamped":
        layer = AffineCoupling(torch.tensor([0.0, 1.0, 0.0]), MLP(3, (16,), 3), MLP(3, (16,), 3), scale_clamp=None)
        x = torch.randn(3, 3)
    elif name == "actnorm-2d":
        layer = ActNorm(3)
        x = torch.randn(3, 3) * 2 + 1
    elif name == "actnorm-image":
        layer = ActNorm(2)
        x = torch.randn(2, 2, 3, 3) * 2 + 1
    elif name == "1x1-lu":
        layer = Invertible1x1Conv(3)
        x = torch.randn(2, 3, 3, 2)
    elif name == "1x1-plain":
        layer = Invertible1x1Conv(3, lu=False)
        x = torch.randn(2, 3, 2, 3)
    elif name == "1x1-vectors":
        layer = Invertible1x1Conv(2)
        x = torch.randn(3, 2)
    elif name == "squeeze":
        layer = Squeeze()
        x = torch.randn(2, 2, 4, 4)
    elif name == "logit":
        layer = LogitTransform(0.05)
        x = torch.rand(2, 1, 3, 3)
    else:
        raise KeyError(name)
    layer = layer.double()
    x = x.double()
    if isinstance(layer, ActNorm):
        layer(x)  # data-dependent initialisation first
    perturb(layer, 0.3)
    return layer, x


LAYERS = ["coupling-2d", "coupling-checkerboard", "coupling-channel", "coupling-unclamped", "actnorm-2d",
          "actnorm-image", "1x1-lu", "1x1-plain", "1x1-vectors", "squeeze", "logit"]

FLOWS = {
    "2d": FlowConfig(kind="2d", num_layers=4, hidden=16),
    "2d-plain": FlowConfig(kind="2d", num_layers=3, hidden=16, use_actnorm=False, use_1x1=False, share_st=False),
    "3d": FlowConfig(kind="2d", dim=3, num_layers=3, hidden=16),
    "image": FlowConfig(kind="image", image_shape=(1, 4, 4), num_layers=2, num_blocks=2, hidden=8),
    "image-mlp": FlowConfig(kind="image", image_shape=(1, 4, 4), num_layers=2, num_blocks=2, hidden=16,
                            coupling_net="mlp"),
    "image-unshared": FlowConfig(kind="image", image_shape=(1, 4, 4), num_layers=2, num_blocks=2, hidden=8,
                                 share_st=False),
    "image-3blocks-rgb": FlowConfig(kind="image", image_shape=(3, 4, 4), num_layers=2, num_blocks=3, hidden=8,
                                    logit_alpha=None),
}


def make_flow(name: str, dtype=torch.float64) -> tuple[RealNVP, torch.Tensor]:
    """A flow with actnorm initialised and weights perturbed, and an input batch."""
    torch.manual_seed(0)
    cfg = FLOWS[name]
    flow = RealNVP(cfg).to(dtype)
    if cfg.kind == "2d":
        x = torch.randn(3, cfg.dim, dtype=dtype)
    else:
        x = torch.rand(3, *cfg.image_shape, dtype=dtype) * 0.9 + 0.05
    flow(torch.rand(16, *flow.event_shape, dtype=dtype))  # actnorm init
    perturb(flow, 0.1)
    return flow, x


# ---------------------------------------------------------------------------------------------- the pieces
def test_coupling_equations_by_hand():
    """Does affine_coupling_forward keep the masked coordinate and map the other to x * exp(s) + t, log-det s?"""
    mask = torch.tensor([1.0, 0.0])

    def s_net(h):
        return torch.stack([h[:, 0] * 10.0, 0.5 * h[:, 0]], dim=1)  # s_1 = x_0 / 2 (s_0 must not matter)

    def t_net(h):
        return torch.stack([h[:, 0] * 10.0, h[:, 0] - 1.0], dim=1)  # t_1 = x_0 - 1

    x = torch.tensor([[1.0, 2.0], [-2.0, 0.5]])
    y, logdet = affine_coupling_forward(x, mask, s_net, t_net)
    x0, x1 = x[:, 0], x[:, 1]
    torch.testing.assert_close(y[:, 0], x0)
    torch.testing.assert_close(y[:, 1], x1 * torch.exp(x0 / 2) + x0 - 1)
    torch.testing.assert_close(logdet, x0 / 2)
    torch.testing.assert_close(affine_coupling_inverse(y, mask, s_net, t_net), x)


def test_coupling_logdet_sums_only_the_transformed_coordinates():
    """Is coupling_logdet the sum of s where the mask is 0, per example?"""
    s = torch.arange(8.0).view(2, 1, 2, 2)
    mask = checkerboard_mask(2, 2)  # [[1, 0], [0, 1]]
    torch.testing.assert_close(coupling_logdet(s, mask), torch.tensor([1.0 + 2.0, 5.0 + 6.0]))


def test_masks():
    """Are the checkerboard, channel and alternating masks the patterns described, and complementary when inverted?"""
    cb = checkerboard_mask(3, 4)
    assert cb.shape == (3, 4)
    assert cb[0].tolist() == [1, 0, 1, 0] and cb[1].tolist() == [0, 1, 0, 1]
    torch.testing.assert_close(cb + checkerboard_mask(3, 4, invert=True), torch.ones(3, 4))
    cm = channel_mask(4)
    assert cm.shape == (4, 1, 1) and cm.flatten().tolist() == [1, 1, 0, 0]
    torch.testing.assert_close(cm + channel_mask(4, invert=True), torch.ones(4, 1, 1))
    am = alternating_masks(2, 3)
    assert am.tolist() == [[1, 0], [0, 1], [1, 0]]


def test_shared_st_network_runs_once_and_acts_as_two_functions():
    """Do SharedST's heads give the two halves of one network's output, running it once per coupling call, and
    does a coupling built on them equal one built on two separate networks computing those halves?"""
    torch.manual_seed(0)
    net = perturb(MLP(2, (16,), 4), 0.3)
    calls = []
    net.register_forward_hook(lambda *_: calls.append(1))
    s_net, t_net = SharedST(net).heads()
    layer = AffineCoupling(torch.tensor([0.0, 1.0]), s_net, t_net)
    assert sum(p.numel() for p in layer.parameters()) == sum(p.numel() for p in net.parameters())
    x = torch.randn(5, 2)
    y, logdet = layer(x)
    assert len(calls) == 1
    layer.inverse(y)
    assert len(calls) == 2
    h = torch.randn(3, 2)
    torch.testing.assert_close(s_net(h), net(h)[:, :2])
    torch.testing.assert_close(t_net(h.clone()), net(h)[:, 2:])

    def s_ref(v):
        return layer.s_net[1](net(v)[:, :2])  # the same soft clamp

    def t_ref(v):
        return net(v)[:, 2:]

    y_ref, logdet_ref = affine_coupling_forward(x, layer.mask, s_ref, t_ref)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(logdet, logdet_ref)


# ---------------------------------------------------------------------------------------------- the layers
@pytest.mark.parametrize("name", LAYERS)
def test_layer_inverse_undoes_forward(name):
    """Does inverse(forward(x)) give x back for every layer type?"""
    layer, x = make_layer(name)
    y, logdet = layer(x)
    assert logdet.shape == (x.shape[0],)
    torch.testing.assert_close(layer.inverse(y), x)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_logdet_matches_autograd_jacobian(name):
    """Is each layer's log-det equal to log |det| of its autograd Jacobian?"""
    layer, x = make_layer(name)
    _, logdet = layer(x)
    torch.testing.assert_close(logdet, jacobian_logdet(layer, x))


def test_actnorm_initialisation_standardises_the_first_batch():
    """Does actnorm's data-dependent init give zero mean and unit variance per channel on the init batch, and
    keep its parameters afterwards (also through a state_dict)?"""
    scale, shift = torch.tensor([0.1, 2.0, 5.0]).view(1, 3, 1, 1), torch.tensor([3.0, -1.0, 0.0]).view(1, 3, 1, 1)
    x = torch.randn(64, 3, 4, 4) * scale + shift
    layer = ActNorm(3)
    y, _ = layer(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    y2, _ = layer(x * 7)  # a second batch must not re-initialise
    torch.testing.assert_close(y2, (x * 7 + layer.bias.view(1, 3, 1, 1)) * layer.log_scale.exp().view(1, 3, 1, 1))
    fresh = ActNorm(3)
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(x * 7)[0], y2)

    v = torch.randn(100, 2) * torch.tensor([3.0, 0.2]) + 4.0
    out, _ = ActNorm(2)(v)
    torch.testing.assert_close(out.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)


@pytest.mark.parametrize("lu", [True, False])
def test_invertible_1x1_logdet_is_slogdet_times_pixels(lu):
    """Is the 1x1 convolution's log-det H * W * log |det W| (torch.linalg.slogdet) and its output F.conv2d's?"""
    torch.manual_seed(1)
    layer = perturb(Invertible1x1Conv(4, lu=lu), 0.2)
    x = torch.randn(2, 4, 3, 5)
    y, logdet = layer(x)
    w = layer.weight()
    torch.testing.assert_close(logdet, torch.linalg.slogdet(w)[1].expand(2) * 15)
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, w[:, :, None, None]))


def test_squeeze_moves_each_2x2_patch_into_channels():
    """Does squeeze put pixel (c, 2i + a, 2j + b) at channel 4c + 2a + b, position (i, j)?"""
    x = torch.arange(2 * 4 * 6.0).view(1, 2, 4, 6)
    y, _ = Squeeze()(x)
    assert y.shape == (1, 8, 2, 3)
    for c in range(2):
        for a in range(2):
            for b in range(2):
                torch.testing.assert_close(y[0, 4 * c + 2 * a + b], x[0, c, a::2, b::2])


# ---------------------------------------------------------------------------------------------- the flow
@pytest.mark.parametrize("name", list(FLOWS))
def test_flow_inverse_undoes_forward(name):
    """Does the whole flow invert (forward then inverse gives x back), for vectors and images?"""
    flow, x = make_flow(name)
    z, logdet = flow(x)
    assert z.shape == (3, *flow.latent_shape) and logdet.shape == (3,)
    torch.testing.assert_close(flow.inverse(z), x)


@pytest.mark.parametrize("name", ["2d", "2d-plain", "3d", "image", "image-mlp", "image-unshared"])
def test_flow_logdet_matches_autograd_jacobian(name):
    """Is the whole flow's summed log-det equal to log |det| of its autograd Jacobian?"""
    flow, x = make_flow(name)
    _, logdet = flow(x)
    torch.testing.assert_close(logdet, jacobian_logdet(flow, x))


def test_flow_without_layers_is_the_standard_normal():
    """Does a flow with no layers give torch.distributions' standard normal log-density?"""
    flow = RealNVP(FlowConfig(kind="2d", dim=3, num_layers=0))
    assert len(flow.layers) == 0
    x = torch.randn(10, 3) * 2
    torch.testing.assert_close(flow.log_prob(x), Normal(0.0, 1.0).log_prob(x).sum(1))
    torch.testing.assert_close(flow.log_prob(x), MultivariateNormal(torch.zeros(3), torch.eye(3)).log_prob(x))
    image = RealNVP(FlowConfig(kind="image", image_shape=(1, 2, 2), num_layers=0, logit_alpha=None))
    xi = torch.randn(4, 1, 2, 2)
    torch.testing.assert_close(image.log_prob(xi), Normal(0.0, 1.0).log_prob(xi).flatten(1).sum(1))


def test_2d_density_integrates_to_one():
    """Does a 2D flow's density integrate to 1 (midpoint rule on a fine grid) up to the mass outside the grid?

    Tolerance: the midpoint rule's error is about h^2 / 24 * integral |laplacian p|; with h = 0.02 and no
    feature of the density narrower than ~0.1 that is well under 0.5%, so 0.01 leaves room. The mass outside
    the box is estimated independently, from 20,000 samples drawn by the inverse pass.
    """
    torch.manual_seed(0)
    flow = RealNVP(FlowConfig(kind="2d", num_layers=4, hidden=16)).double()
    flow(sample_toy2d("moons", 512, generator=torch.Generator().manual_seed(0)).double())  # actnorm init
    for layer in flow.layers:
        if isinstance(layer, AffineCoupling):
            perturb(layer, 0.2)  # bends the density (actnorm and 1x1 keep the scale of the moons)
    xs, ys, density = density_grid(flow, (-8.0, 8.0), (-8.0, 8.0), resolution=800)
    assert density.shape == (800, 800)
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    mass_inside = float(density.sum() * cell)
    samples = flow.sample(20_000, generator=torch.Generator().manual_seed(1))
    outside = float((samples.abs() > 8.0).any(dim=1).double().mean())
    assert outside < 0.01
    assert abs(mass_inside + outside - 1.0) < 0.01, (mass_inside, outside)
    # the grid's orientation: density[i, j] = p(xs[j], ys[i])
    for i, j in [(100, 400), (350, 20), (799, 0)]:
        point = torch.stack([xs[j], ys[i]])[None]
        torch.testing.assert_close(density[i, j], flow.log_prob(point).exp()[0])


def test_sample_is_reproducible_and_its_trajectory_is_the_inverse_pass_layer_by_layer():
    """Are samples equal for equal seeds, and is the trajectory z, then each inverted layer, ending at the samples,
    the forward pass of `layer_outputs` run backwards?"""
    flow, _ = make_flow("image")
    a = flow.sample(5, generator=torch.Generator().manual_seed(3))
    b, traj = flow.sample(5, generator=torch.Generator().manual_seed(3), return_trajectory=True)
    torch.testing.assert_close(a, b)
    assert traj.shape == (len(flow.layers) + 1, 5, *flow.event_shape)
    torch.testing.assert_close(traj[-1], b)
    z = torch.randn(5, *flow.latent_shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    torch.testing.assert_close(traj[0], flow.to_data_layout(z, len(flow.layers)))
    forward = layer_outputs(flow, b)
    torch.testing.assert_close(forward.flip(0), traj)
    hot = flow.sample(5, generator=torch.Generator().manual_seed(3), temperature=0.5)
    torch.testing.assert_close(hot, flow.inverse(0.5 * z))


def test_injected_coupling_pieces_are_used_and_change_the_cache_key():
    """Does RealNVP use a student's coupling functions (same numbers when correct, different when wrong), and does
    cache_key change with them?"""
    def my_forward(x, mask, s_net, t_net):
        h = mask * x
        s, t = s_net(h), t_net(h)
        return h + (1 - mask) * (x * s.exp() + t), ((1 - mask) * s).flatten(1).sum(1)

    def my_inverse(y, mask, s_net, t_net):
        h = mask * y
        return h + (1 - mask) * (y - t_net(h)) * (-s_net(h)).exp()

    def wrong_logdet(s, mask):
        return s.flatten(1).sum(1)  # forgets the mask

    cfg = FlowConfig(kind="2d", num_layers=2, hidden=8)
    torch.manual_seed(0)
    ref = perturb(RealNVP(cfg), 0.2)
    mine = RealNVP(cfg, coupling_forward_fn=my_forward, coupling_inverse_fn=my_inverse)
    wrong = RealNVP(cfg, coupling_logdet_fn=wrong_logdet)
    mine.load_state_dict(ref.state_dict())
    wrong.load_state_dict(ref.state_dict())
    x = torch.randn(6, 2)
    torch.testing.assert_close(mine.log_prob(x), ref.log_prob(x))
    torch.testing.assert_close(mine.inverse(mine(x)[0]), x)
    assert not torch.allclose(wrong.log_prob(x), ref.log_prob(x))
    assert len({str(m.cache_key()) for m in (ref, mine, wrong)}) == 3


def test_injected_dequantize_is_used_by_loss_and_keys_the_cache():
    """Does loss() dequantize with an injected dequantize_fn (called with the levels), and does the cache key
    change with it while staying as before for flows without one?"""
    cfg = FlowConfig(kind="image", image_shape=(1, 4, 4), num_layers=1, hidden=4, levels=17, dequantize=True)
    calls = []

    def mid_bin(x, levels):  # a deterministic "dequantisation": the centre of each bin
        calls.append(levels)
        return ((x * (levels - 1)).round() + 0.5) / levels

    torch.manual_seed(0)
    ref = RealNVP(cfg)
    mine = RealNVP(cfg, dequantize_fn=mid_bin)
    mine.load_state_dict(ref.state_dict())
    x = torch.randint(0, 17, (5, 1, 4, 4)).float() / 16
    loss, _ = mine.loss(x)
    assert calls == [17]
    torch.testing.assert_close(loss, -ref.log_prob((x * 16 + 0.5) / 17).mean())
    assert set(ref.cache_key()) == {"coupling_forward_fn", "coupling_inverse_fn", "coupling_logdet_fn"}
    assert mine.cache_key() != ref.cache_key()


@pytest.mark.parametrize("name", ["2d", "image"])
def test_stage_log_prob_runs_from_the_base_to_the_model_along_the_inverse_pass(name):
    """Is stage_log_prob the base density for j = 0, the model's log_prob for j = K, and, at every j, the base
    log-density of z minus the autograd log |det| of the j inverse layers that carried z to h_j?"""
    flow, _ = make_flow(name)
    num_layers = len(flow.layers)
    _, traj = flow.sample(3, generator=torch.Generator().manual_seed(0), return_trajectory=True)
    z = traj[0]
    torch.testing.assert_close(stage_log_prob(flow, z, 0), Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1))
    torch.testing.assert_close(stage_log_prob(flow, traj[-1], num_layers), flow.log_prob(traj[-1]))
    h = torch.randn(3, *flow.latent_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = Normal(0.0, 1.0).log_prob(h).flatten(1).sum(1)  # (3,)
    for j, layer in enumerate(reversed(flow.layers), start=1):
        expected = expected - jacobian_logdet(lambda v, layer=layer: (layer.inverse(v),), h)
        h = layer.inverse(h)
        torch.testing.assert_close(flow.to_data_layout(h, num_layers - j), traj[j])
        torch.testing.assert_close(stage_log_prob(flow, traj[j], j), expected)
    with pytest.raises(ValueError, match="num_inverted"):
        stage_log_prob(flow, traj[0], num_layers + 1)


def test_every_stage_density_integrates_to_one():
    """Does density_grid(num_inverted=j) integrate to about 1 for every j of a 2D flow (midpoint rule)?"""
    torch.manual_seed(0)
    flow = perturb(RealNVP(FlowConfig(kind="2d", num_layers=3, hidden=16, use_actnorm=False, use_1x1=False)), 0.2)
    flow = flow.double()
    for j in range(len(flow.layers) + 1):
        xs, ys, density = density_grid(flow, (-9.0, 9.0), (-9.0, 9.0), resolution=500, num_inverted=j)
        mass = float(density.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]))
        assert abs(mass - 1.0) < 0.01, (j, mass)
    torch.testing.assert_close(density_grid(flow, resolution=20, num_inverted=len(flow.layers))[2],
                               density_grid(flow, resolution=20)[2])


def test_config_errors_are_concise():
    """Are a wrong kind, an odd size to squeeze, dequantize without levels, wrongly shaped data and a density grid
    of a flow that is not on 2D points refused?"""
    with pytest.raises(ValueError, match="kind"):
        RealNVP(FlowConfig(kind="3d"))
    with pytest.raises(ValueError, match="squeeze"):
        RealNVP(FlowConfig(kind="image", image_shape=(1, 6, 6), num_blocks=3))
    with pytest.raises(ValueError, match="levels"):
        RealNVP(FlowConfig(kind="image", dequantize=True))
    with pytest.raises(ValueError, match="shape"):
        RealNVP(FlowConfig(kind="2d")).log_prob(torch.randn(4, 3))
    with pytest.raises(ValueError, match="2D"):
        density_grid(RealNVP(FlowConfig(kind="image", image_shape=(1, 2, 2), num_layers=0)))


# ---------------------------------------------------------------------------------------------- dequantisation
def test_dequantize_puts_each_level_uniformly_in_its_bin():
    """Does dequantize map k / (L - 1) into [k / L, (k + 1) / L), uniformly, reproducibly, and refuse off-grid data?"""
    levels = 17
    k = torch.randint(0, levels, (20_000,), generator=torch.Generator().manual_seed(0))
    x = k / (levels - 1)
    y = dequantize(x, levels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.floor(y * levels).long(), k)
    u = y * levels - k
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    torch.testing.assert_close(y, dequantize(x, levels, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="grid"):
        dequantize(y, levels)  # already dequantized


def test_bits_per_dim_by_hand():
    """Does bits_per_dim give log2(L) for the uniform density, and -log2 P(k) / D for the piecewise-constant
    density p(y) = L^D P(k) of a discrete model P (the bound is tight there)?"""
    assert bits_per_dim(0.0, 64, 17) == pytest.approx(math.log2(17))
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])  # P(k) per pixel, L = 4, two independent pixels
    k = torch.tensor([[0, 3], [2, 2], [1, 0]])
    p_discrete = probs[k].prod(dim=1)  # (3,)
    y = (k + torch.rand(3, 2)) / 4  # any point of the bin
    log_density = torch.log(4**2 * probs[torch.floor(4 * y).long()].prod(dim=1))
    torch.testing.assert_close(bits_per_dim(log_density, 2, 4), -torch.log2(p_discrete) / 2)


def test_logit_flow_density_and_its_discrete_bound():
    """With no coupling layers, is an image flow's log_prob the density of (sigmoid(w) - alpha) / (1 - 2 alpha) with
    w ~ N(0, 1) (torch.distributions), is the logged bits/dim the hand formula, and is it an upper bound on the
    exact discrete bits/dim (bin probabilities from the normal CDF)?"""
    alpha, levels = 0.05, 5
    cfg = FlowConfig(kind="image", image_shape=(1, 2, 2), num_layers=0, logit_alpha=alpha, levels=levels)
    flow = RealNVP(cfg).double()
    reference = TransformedDistribution(
        Normal(torch.tensor(0.0, dtype=torch.float64), 1.0),
        [SigmoidTransform(), AffineTransform(-alpha / (1 - 2 * alpha), 1 / (1 - 2 * alpha))],
    )
    k = torch.randint(0, levels, (4096, 1, 2, 2), generator=torch.Generator().manual_seed(0)).double()
    y = dequantize(k / (levels - 1), levels, generator=torch.Generator().manual_seed(1))
    log_p = flow.log_prob(y)
    torch.testing.assert_close(log_p, reference.log_prob(y).flatten(1).sum(1))

    _, logs = flow.loss(y)
    assert logs["bpd"] == pytest.approx(float(-(log_p.mean() - 4 * math.log(levels)) / (4 * math.log(2))))

    def w(v):  # the logit of the bin edge v in [0, 1]
        s = alpha + (1 - 2 * alpha) * v
        return torch.log(s / (1 - s))

    std_normal = Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    bin_prob = std_normal.cdf(w((k + 1) / levels)) - std_normal.cdf(w(k / levels))  # exact P per pixel
    exact_bpd = float(-torch.log2(bin_prob).flatten(1).sum(1).mean() / 4)
    assert logs["bpd"] >= exact_bpd - 0.01  # the bound, up to Monte Carlo error over u
    assert logs["bpd"] - exact_bpd < 0.1  # and not a loose one for this smooth density


def test_loss_dequantizes_levels_itself_when_asked():
    """With dequantize=True, does loss() take grey levels k / (L - 1), and refuse data that is not on that grid?"""
    cfg = FlowConfig(kind="image", image_shape=(1, 4, 4), num_layers=1, hidden=4, levels=17, dequantize=True)
    flow = RealNVP(cfg)
    x = torch.randint(0, 17, (8, 1, 4, 4)).float() / 16
    loss, logs = flow.loss((x, torch.zeros(8)))
    assert torch.isfinite(loss) and set(logs) == {"nll", "bpd"}
    with pytest.raises(ValueError, match="grid"):
        flow.loss(x + 0.01)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_realnvp_beats_a_fitted_gaussian_on_two_moons():
    """Does RealNVP reach a held-out NLL on two moons clearly below a full-covariance Gaussian fitted to the data?"""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train, test = sample_toy2d("moons", 4000, generator=g), sample_toy2d("moons", 2000, generator=g)
    gaussian = MultivariateNormal(train.mean(0), torch.cov(train.T))
    gaussian_nll = float(-gaussian.log_prob(test).mean())
    flow = RealNVP(FlowConfig(kind="2d", num_layers=4, hidden=32))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train), batch_size=128, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    fit(flow, loader, epochs=100, lr=5e-3, max_steps=150, device="cpu", progress=False)
    with torch.no_grad():
        flow_nll = float(-flow.log_prob(test).mean())
    assert flow_nll < gaussian_nll - 0.3, (flow_nll, gaussian_nll)


@pytest.mark.slow
def test_realnvp_overfits_one_batch_of_digits():
    """Can the image flow memorise one batch of 16 dequantized digits (bits/dim far below where it started and
    far below the same model's bits/dim on other digits)?"""
    torch.manual_seed(0)
    batch = load_digits("train", "dequantized").tensors[0][:16]
    others = load_digits("test", "dequantized").tensors[0][:64]
    flow = RealNVP(FlowConfig(kind="image", num_layers=2, num_blocks=2, hidden=16, levels=17))
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    start = flow.loss(batch)[1]["bpd"]
    for _ in range(100):
        opt.zero_grad()
        loss, logs = flow.loss(batch)
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = flow.loss(batch)[1]["bpd"]
        held_out = flow.loss(others)[1]["bpd"]
    assert end < start - 1.0, (start, end)
    assert end < held_out - 0.5, (end, held_out)
