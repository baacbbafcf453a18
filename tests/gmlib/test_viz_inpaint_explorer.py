"""The inpainting explorer, headless: setting a widget's value fires its callbacks synchronously."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from gmlib.applications import make_mask
from gmlib.viz.inpaint_explorer import hidden_rmse, inpaint_explorer


def noisy_fill(x, mask, generator):
    """A stand-in model: keeps the known pixels and fills the hidden ones with uniform noise from the generator."""
    return x * mask + (1 - mask) * torch.rand(x.shape, generator=generator)


def png_values(data: bytes, size: int = 8) -> torch.Tensor:
    small = Image.open(io.BytesIO(data)).resize((size, size), Image.NEAREST)
    return torch.tensor(np.asarray(small), dtype=torch.float32) / 255


def make(**kwargs):
    torch.manual_seed(0)
    images = torch.rand(5, 1, 8, 8)
    return images, inpaint_explorer(noisy_fill, images, **kwargs)


def test_panels_show_the_image_and_the_masked_input():
    """Does the original panel show image 0 and the input panel grey where the bottom half is hidden?"""
    images, ex = make()
    assert ex.original.value and ex.completions.value and ex.status.value == ""
    assert (png_values(ex.original.value) - images[0, 0]).abs().max() <= 1 / 255 + 1e-6
    shown = png_values(ex.masked.value)
    assert torch.allclose(shown[4:], torch.full((4, 8), 128 / 255), atol=1e-6)
    assert (shown[:4] - images[0, 0, :4]).abs().max() <= 1 / 255 + 1e-6


def test_changing_the_mask_and_seed_changes_the_pictures():
    """Do the mask kind, the fraction (for random pixels), the seed and the image index re-render?"""
    _, ex = make()
    before = ex.masked.value
    ex.kind.value = "left half"
    assert ex.masked.value != before
    ex.kind.value = "random pixels"
    assert not ex.fraction.disabled
    before = ex.masked.value
    ex.fraction.value = 0.8
    assert ex.masked.value != before
    before = ex.completions.value
    ex.seed.value = 3
    assert ex.completions.value != before
    before = ex.original.value
    ex.index.value = 2
    assert ex.original.value != before


def test_errors_are_rmse_on_hidden_pixels_only():
    """Is each reported error the RMSE over the hidden pixels of that completion?"""
    images, ex = make(num_samples=3, seed=4)
    x, mask, filled = ex.completions_now()
    torch.testing.assert_close(mask, make_mask("bottom half", (1, 1, 8, 8)))
    errs = hidden_rmse(filled, x.expand_as(filled), mask)
    manual = ((filled - x)[..., 4:, :] ** 2).flatten(1).mean(1).sqrt()
    torch.testing.assert_close(errs, manual)
    assert ex.errors.value.startswith("RMSE on the hidden pixels: " + ", ".join(f"{e:.3f}" for e in errs.tolist()))
    assert torch.equal(filled[..., :4, :], x.expand_as(filled)[..., :4, :])  # known pixels kept by this fill


def test_bad_arguments_are_named():
    """Are a wrong image shape, an unknown mask and a fill of the wrong shape reported?"""
    with pytest.raises(ValueError, match="images"):
        inpaint_explorer(noisy_fill, torch.rand(8, 8))
    with pytest.raises(ValueError, match="mask"):
        inpaint_explorer(noisy_fill, torch.rand(2, 1, 8, 8), kind="stripes")
    with pytest.raises(ValueError, match="fill returned shape"):
        inpaint_explorer(lambda x, m, g: x[:1], torch.rand(2, 1, 8, 8))
