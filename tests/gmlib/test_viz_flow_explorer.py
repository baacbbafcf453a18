"""The flow explorer, headless: setting a widget's value fires its callbacks synchronously, and every view is
written into Image.value / HTML.value."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from gmlib.data import sample_toy2d
from gmlib.models.flows import AffineCoupling, FlowConfig, RealNVP, density_grid, layer_outputs
from gmlib.viz.flow_explorer import FlowExplorer, describe_layer, flow_explorer


@torch.no_grad()
def _perturbed(flow: RealNVP, std: float = 0.2) -> RealNVP:
    for p in flow.parameters():
        p.add_(std * torch.randn_like(p))
    return flow.eval()


@pytest.fixture(scope="module")
def flow_2d() -> RealNVP:
    torch.manual_seed(0)
    return _perturbed(RealNVP(FlowConfig(kind="2d", num_layers=3, hidden=16, use_actnorm=False, use_1x1=False)))


@pytest.fixture(scope="module")
def moons() -> torch.Tensor:
    return sample_toy2d("moons", 200, generator=torch.Generator().manual_seed(0))


def _size(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def test_slider_walks_from_the_base_to_the_samples(flow_2d, moons):
    """Does the slider show z at j = 0, the samples at j = K, and at each j the state of the inverse pass, with a
    caption naming the layer last inverted?"""
    ex = flow_explorer(flow_2d, data=moons, num_samples=300, resolution=40)
    assert isinstance(ex, FlowExplorer) and ex.layer.max == 3 and ex.layer.value == 3
    _, traj = flow_2d.sample(300, generator=torch.Generator().manual_seed(0), return_trajectory=True)
    for j in range(4):
        torch.testing.assert_close(ex.states(j), traj[j])
    torch.testing.assert_close(ex.states(3), flow_2d.sample(300, generator=torch.Generator().manual_seed(0)))
    assert "samples" in ex.caption.value and _size(ex.image.value)[0] > 100
    images = {3: ex.image.value}
    for j in (2, 1, 0):
        ex.layer.value = j
        images[j] = ex.image.value
        if j:
            assert f"layer {3 - j + 1}" in ex.caption.value and "affine coupling" in ex.caption.value
    assert "N(0" in ex.caption.value and "nothing inverted" in ex.caption.value
    assert len(set(images.values())) == 4  # every stage looks different
    ex.layer.value = 3
    assert ex.image.value == images[3]  # and coming back redraws the same picture


def test_density_and_data_at_each_stage(flow_2d, moons):
    """Is the drawn density the stage density (base at j = 0, the model at j = K), and the data the forward pass
    stopped after K - j layers? Do the two checkboxes change the picture?"""
    ex = flow_explorer(flow_2d, data=moons, num_samples=200, resolution=30, xlim=(-4, 4), ylim=(-3, 3))
    xs, ys, dens = ex.density(0)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    base = torch.exp(-0.5 * (gx**2 + gy**2)) / (2 * torch.pi)
    torch.testing.assert_close(dens, base, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(ex.density(3)[2], density_grid(flow_2d, (-4, 4), (-3, 3), 30)[2])
    forward = layer_outputs(flow_2d, moons)
    for j in range(4):
        torch.testing.assert_close(ex.data_states(j), forward[3 - j])
    before = ex.image.value
    ex.show_density.value = False
    no_density = ex.image.value
    ex.show_data.value = False
    assert len({before, no_density, ex.image.value}) == 3


def test_temperature_resamples(flow_2d):
    """Does a lower temperature draw z with a smaller spread and redraw the picture?"""
    ex = flow_explorer(flow_2d, num_samples=500, resolution=20)
    assert ex.data_states(0) is None and ex.show_data.layout.display == "none"
    before, z_before = ex.image.value, ex.states(0).clone()
    ex.temperature.value = 0.5
    torch.testing.assert_close(ex.states(0), 0.5 * z_before)
    assert ex.image.value != before


def test_image_flow_shows_grids_of_every_stage():
    """For an image flow, does every stage render a grid (squeezes undone), with a caption naming each layer type?"""
    torch.manual_seed(0)
    flow = RealNVP(FlowConfig(kind="image", image_shape=(1, 4, 4), num_layers=1, num_blocks=2, hidden=8, levels=17))
    data = torch.randint(0, 17, (20, 1, 4, 4)).float() / 17 + 0.02
    flow.log_prob(data)  # actnorm init
    _perturbed(flow, 0.3)
    ex = flow_explorer(flow, data=data, num_images=8, scale=2)
    assert ex.show_density.layout.display == "none" and ex.states(0).shape == (8, 1, 4, 4)
    seen, captions, previous = [], "", None
    for j in range(ex.num_layers + 1):
        ex.layer.value = j
        seen.append(bytes(ex.image.value))
        captions += ex.caption.value
        if j and isinstance(flow.layers[ex.num_layers - j], AffineCoupling):
            assert seen[-1] != previous, j  # inverting a coupling changes the images
        previous = seen[-1]
    for word in ("squeeze", "logit", "actnorm", "1x1", "checkerboard", "channel"):
        assert word in captions, word
    ex.show_data.value = False
    assert _size(ex.image.value)[1] < _size(seen[-1])[1]  # one row of images fewer


def test_describe_layer_names_the_coordinates_of_a_2d_coupling(flow_2d):
    """Does the caption say which coordinate a 2D coupling changes and which it keeps?"""
    text = describe_layer(flow_2d.layers[0])  # mask [1, 0]: keeps x[0], changes x[1]
    assert "x[1] given x[0]" in text
