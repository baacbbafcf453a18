"""Plots and the latent explorer, headless (callbacks fire synchronously when a widget value is set)."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from gmlib.models.vae import VAE, VAEConfig
from gmlib.train import History
from gmlib.viz import image_grid, latent_explorer, plot_history, show_images, to_png


def test_image_grid_places_each_image():
    """Does image i land in row i // nrow, column i % nrow of the grid?"""
    imgs = torch.stack([torch.full((1, 2, 2), i / 5) for i in range(5)])
    grid = image_grid(imgs, nrow=3, padding=1)
    assert grid.shape == (1, 2 * 3 + 1, 3 * 3 + 1)
    assert grid[0, 1, 1] == 0 and grid[0, 1, 4] == imgs[1, 0, 0, 0] and grid[0, 4, 4] == imgs[4, 0, 0, 0]


def test_to_png_round_trips_values_and_scales():
    """Does to_png encode grey levels faithfully and enlarge by the scale factor?"""
    img = torch.tensor([[0.0, 1.0], [0.5, 0.25]])
    decoded = Image.open(io.BytesIO(to_png(img, scale=3)))
    assert decoded.size == (6, 6)
    assert decoded.getpixel((0, 0)) == 0 and decoded.getpixel((5, 0)) == 255 and decoded.getpixel((0, 5)) == 128


def test_figures_build_without_pyplot():
    """Do show_images and plot_history return figures with the expected panels?"""
    assert len(show_images(torch.rand(10, 1, 8, 8), nrow=5, title="x").axes) == 1
    h = History()
    for i in range(30):
        h.log_step({"loss": 1 / (i + 1), "kl": 0.1})
    assert [ax.get_title() for ax in plot_history(h).axes] == ["loss", "kl"]


def make_explorer(num_classes=0):
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent_dim=3, hidden=(16,), num_classes=num_classes))
    return model, latent_explorer(model, inputs=torch.rand(4, 1, 8, 8))


def test_latent_slider_changes_the_image_to_the_decoded_value():
    """Does moving a latent slider re-render the image as decode_mean(z) at the sliders' z?"""
    model, ex = make_explorer()
    before = ex.image.value
    ex.sliders[1].value = 2.0
    assert ex.image.value != before
    z = torch.tensor([[0.0, 2.0, 0.0]])
    expected = (model.decode_mean(z)[0, 0].detach().flatten() * 255).round()
    small = Image.open(io.BytesIO(ex.image.value)).resize((8, 8), Image.NEAREST)
    got = torch.tensor(np.asarray(small), dtype=torch.float32).flatten()
    assert (got - expected).abs().max() <= 1
    ex._on_reset()
    assert ex.image.value == before


def test_grid_and_interpolation_views_respond():
    """Do the grid's dimension choice and the interpolation slider and inputs change their images?"""
    _, ex = make_explorer()
    grid0 = ex.grid_image.value
    ex.dim_y.value = 2
    assert ex.grid_image.value != grid0
    interp0 = ex.interp_image.value
    ex.interp_t.value = 1.0
    assert ex.interp_image.value != interp0
    strip0 = ex.interp_strip.value
    ex.index_b.value = 3
    assert ex.interp_strip.value != strip0
    assert [ex.tabs.get_title(i) for i in range(3)] == ["sliders", "2D grid", "interpolation"]


def test_conditional_explorer_switches_class():
    """Does the class dropdown of a conditional model change the decoded image?"""
    _, ex = make_explorer(num_classes=10)
    before = ex.image.value
    ex.class_select.value = 7
    assert ex.image.value != before
