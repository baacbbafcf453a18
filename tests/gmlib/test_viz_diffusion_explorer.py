"""The diffusion-step explorer, headless: setting a control's value fires its callback synchronously."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from gmlib.models.ddpm import DDPM, DDPMConfig
from gmlib.viz.diffusion_explorer import diffusion_explorer, scatter_png


def tiny(kind="image", num_classes=0, **kw) -> DDPM:
    torch.manual_seed(0)
    widths = (8, 16) if kind == "image" else (16, 16)
    return DDPM(DDPMConfig(kind=kind, T=40, widths=widths, num_classes=num_classes), **kw)


def pixels(png: bytes, size: int = 8) -> torch.Tensor:
    """The PNG shrunk back to size x size grey levels in [0, 1]."""
    img = Image.open(io.BytesIO(png)).convert("L").resize((size, size), Image.NEAREST)
    return torch.tensor(np.asarray(img), dtype=torch.float32) / 255


def test_forward_slider_shows_q_sample_of_the_chosen_input():
    """Does the forward image show x_t = sqrt(ab) x0 + sqrt(1 - ab) eps of the chosen input at the slider's t,
    with eps from the noise seed, and change with t, the input and the seed?"""
    model = tiny()
    inputs = torch.rand(3, 1, 8, 8)
    ex = diffusion_explorer(model, inputs=inputs, step_options=(5, 10))
    for t, index in ((0, 0), (17, 2), (39, 1)):
        ex.input_index.value = index
        ex.t_slider.value = t
        eps = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        ab = model.schedule.alpha_bar[t]
        expected = ((ab.sqrt() * (2 * inputs[index] - 1) + (1 - ab).sqrt() * eps[0] + 1) / 2).clamp(0, 1)[0]
        assert (pixels(ex.forward_image.value) - expected).abs().max() <= 1.5 / 255, (t, index)
        assert f"t = {t} of 40" in ex.forward_info.value
    before = ex.forward_image.value
    ex.noise_seed.value = 5
    assert ex.forward_image.value != before
    strip = ex.forward_strip.value
    ex.input_index.value = 0
    assert ex.forward_strip.value != strip


def test_reverse_controls_rerun_the_sampler_and_the_slider_scrubs_its_trajectory():
    """Do the sampler and step-count controls re-run sampling (slider range = steps), does the step slider show
    x_t and x0_pred of the stored trajectory, and is the final frame the sample?"""
    model = tiny()
    ex = diffusion_explorer(model, inputs=torch.rand(2, 1, 8, 8), num_samples=3, step_options=(5, 10, 40))
    assert ex.step_slider.max == 10 and len(ex.trajectory["t"]) == 10  # the middle option by default
    ex.num_steps.value = 5
    assert ex.step_slider.max == 5 and len(ex.trajectory["t"]) == 5
    assert ex.step_slider.value <= 5
    ex.step_slider.value = 0
    first = ex.reverse_image.value
    ex.step_slider.value = 5
    assert ex.reverse_image.value != first and "final sample" in ex.reverse_info.value
    img = Image.open(io.BytesIO(ex.reverse_image.value)).convert("L")
    tile = torch.tensor(np.asarray(img), dtype=torch.float32)[ex.scale: 9 * ex.scale, ex.scale: 9 * ex.scale] / 255
    tile = tile[:: ex.scale, :: ex.scale]  # the first sample's 8x8 pixels, top-left of the grid
    samples = model.sample(3, sampler="ddpm", num_steps=5, generator=torch.Generator().manual_seed(0))
    assert (tile - samples[0, 0]).abs().max() <= 1.5 / 255
    ddpm_traj = ex.trajectory["x_t"].clone()
    ex.sampler.value = "ddim"
    assert "DDIM, 5 steps" in ex.reverse_info.value
    assert not torch.allclose(ex.trajectory["x_t"][-1], ddpm_traj[-1])
    ex.num_steps.value = 40
    assert ex.step_slider.max == 40 and ex.step_slider.value == 40  # the same fraction of the run
    strip = ex.reverse_strip.value
    ex.sample_seed.value = 3
    assert ex.reverse_strip.value != strip


def test_conditional_controls_and_injected_step_functions_are_used():
    """With a class-conditional model, do the class and guidance controls change the samples, with the model's
    injected step and guidance functions doing the work?"""
    calls = {"ddpm": 0, "guided": 0}

    def my_step(x_t, eps, ab, ab_prev, generator=None):
        calls["ddpm"] += 1
        from gmlib.diffusion import ddpm_step

        return ddpm_step(x_t, eps, ab, ab_prev, generator)

    def my_guidance(cond, uncond, w):
        calls["guided"] += 1
        return (1 + w) * cond - w * uncond

    model = tiny(num_classes=3, ddpm_step_fn=my_step, guidance_fn=my_guidance)
    ex = diffusion_explorer(model, inputs=torch.rand(2, 1, 8, 8), num_samples=2, step_options=(4,))
    assert calls["ddpm"] == 4 and calls["guided"] == 0
    before = ex.trajectory["x_t"][-1].clone()
    ex.label.value = 2
    after_label = ex.trajectory["x_t"][-1].clone()
    assert not torch.allclose(before, after_label)
    ex.guidance.value = 2.0
    assert calls["guided"] == 4 and "8 network evaluations" in ex.reverse_info.value
    assert not torch.allclose(after_label, ex.trajectory["x_t"][-1])


def test_two_dimensional_model_draws_scatter_plots():
    """For a 2D model, are the forward and reverse views scatter plots that respond to the controls?"""
    model = tiny("2d")
    data = torch.randn(200, 2)
    ex = diffusion_explorer(model, inputs=data, num_points=50, step_options=(5,))
    assert ex.trajectory["x_t"].shape == (6, 50, 2)
    assert Image.open(io.BytesIO(ex.forward_image.value)).format == "PNG"
    before = ex.forward_image.value
    ex.t_slider.value = 39
    assert ex.forward_image.value != before
    rev = ex.reverse_image.value
    assert ex.step_slider.value == 0
    ex.step_slider.value = 5
    assert ex.reverse_image.value != rev
    assert scatter_png([(data, "C0")]) != scatter_png([(data * 0.5, "C0")])
