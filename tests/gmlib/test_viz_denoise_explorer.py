"""The noise-level explorer, headless: setting a widget's value fires its callbacks synchronously."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from gmlib.models.ae import AEConfig, Autoencoder, corrupt
from gmlib.viz.denoise_explorer import DenoiseExplorer, denoise_explorer, squared_error


def shrink(x):
    """A stand-in 'model': pulls every pixel halfway to 0.5 (x_tilde -> x_hat in [0, 1] for x_tilde in [0, 1])."""
    return 0.5 * x.clamp(0, 1) + 0.25


def make(**kwargs):
    torch.manual_seed(0)
    images = torch.rand(6, 1, 8, 8)
    models = {"identity": lambda t: t.clamp(0, 1), "shrink": shrink}
    return images, denoise_explorer(models, images, **kwargs)


def png_values(data: bytes, size: int = 8) -> torch.Tensor:
    small = Image.open(io.BytesIO(data)).resize((size, size), Image.NEAREST)
    return torch.tensor(np.asarray(small), dtype=torch.float32) / 255


def test_panels_show_clean_noisy_and_each_reconstruction():
    """Is there one panel per model besides the clean and noisy images, and does the clean panel show image 0?"""
    images, ex = make()
    assert list(ex.panels) == ["clean x", "noisy input", "identity", "shrink"]
    assert all(p.value for p in ex.panels.values()) and ex.curve.value and ex.status.value == ""
    assert (png_values(ex.panels["clean x"].value) - images[0, 0]).abs().max() <= 1 / 255 + 1e-6


def test_noise_slider_changes_the_noisy_image_and_the_errors():
    """Does moving the noise slider change the noisy input and the errors, and at noise 0 is the noisy input
    the clean image (error 0 for the identity model)?"""
    images, ex = make(noise=0.3)
    noisy, err = ex.panels["noisy input"].value, ex.errors["identity"].value
    curve = ex.curve.value
    ex.noise.value = 0.0
    assert ex.panels["noisy input"].value != noisy and ex.errors["identity"].value != err
    assert ex.panels["noisy input"].value == ex.panels["clean x"].value
    assert ex.errors["identity"].value == "error 0.000"
    assert ex.curve.value != curve  # the marker moved


def test_errors_are_the_sum_of_squares_against_the_clean_image():
    """Is each shown error ||x_hat - x||^2 of the shown image, with the noise drawn from the seed?"""
    images, ex = make(noise=0.2, seed=5)
    ex.index.value = 3
    x_tilde = corrupt(images, 0.2, "gaussian", generator=torch.Generator().manual_seed(5))[3:4]
    expected = ((shrink(x_tilde) - images[3:4]) ** 2).sum().item()
    assert ex.errors["shrink"].value == f"error {expected:.3f}"
    noisy = ((x_tilde.clamp(0, 1) - images[3:4]) ** 2).sum().item()
    assert ex.errors["noisy input"].value == f"error {noisy:.3f}"


def test_curves_average_the_errors_over_all_images():
    """Is each curve point the mean error over every image at that level, and the noisy input's error 0 at
    level 0?"""
    images, ex = make(levels=[0.0, 0.5, 1.0])
    curves = ex.curves("gaussian")
    assert set(curves) == {"noisy input", "identity", "shrink"}
    assert curves["noisy input"][0] == 0
    x_tilde = corrupt(images, 0.5, "gaussian", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(curves["shrink"][1], squared_error(shrink(x_tilde), images).mean())
    assert curves["noisy input"][2] > curves["noisy input"][1] > 0


def test_kind_toggle_switches_to_masking():
    """Does the kind toggle switch the corruption to masking (every noisy pixel either 0 or the clean value)?"""
    images, ex = make(noise=0.5)
    before = ex.panels["noisy input"].value
    ex.kind.value = "masking"
    assert ex.panels["noisy input"].value != before
    shown = png_values(ex.panels["noisy input"].value)
    clean = png_values(ex.panels["clean x"].value)
    assert torch.all((shown == 0) | ((shown - clean).abs() < 1e-6))
    assert (shown == 0).float().mean() > 0.2
    assert ("masking", 0) in ex._curves  # the curves were recomputed for masking


def test_seed_and_index_change_the_picture():
    """Do the seed box and the image slider re-render the noisy input?"""
    _, ex = make(noise=0.4)
    before = ex.panels["noisy input"].value
    ex.seed.value = 1
    assert ex.panels["noisy input"].value != before
    before = ex.panels["clean x"].value
    ex.index.value = 2
    assert ex.panels["clean x"].value != before


def test_works_with_autoencoders_and_a_custom_corruption():
    """Does it run real Autoencoders with an injected corruption and error function?"""
    torch.manual_seed(0)
    ae = Autoencoder(AEConfig(latent_dim=2, hidden=(8,)))
    dae = Autoencoder(AEConfig(latent_dim=2, hidden=(8,), noise_std=0.3))
    calls = []

    def my_corrupt(x, level, kind, generator=None):
        calls.append(kind)
        return corrupt(x, level, kind, generator=generator)

    ex = DenoiseExplorer({"AE": ae, "DAE": dae}, torch.rand(4, 1, 8, 8), corrupt_fn=my_corrupt,
                         error_fn=lambda a, b: (a - b).abs().flatten(1).sum(1), levels=torch.linspace(0, 1, 3))
    assert calls and ex.errors["DAE"].value.startswith("error ")
    ex.noise.value = 0.9
    assert ex.status.value == ""


def test_bad_arguments_are_named():
    """Are an empty model list, a wrong image shape and an unknown noise kind reported?"""
    with pytest.raises(ValueError, match="model"):
        denoise_explorer({}, torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="images"):
        denoise_explorer({"s": shrink}, torch.rand(8, 8))
    with pytest.raises(ValueError, match="kind"):
        denoise_explorer({"s": shrink}, torch.rand(2, 1, 8, 8), kind="salt")
