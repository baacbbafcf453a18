"""The sampler-chain explorer, headless: setting the step slider's value fires the callback synchronously."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from gmlib.models.ebm import EBM, EBMConfig, energy_grid
from gmlib.models.rbm import RBM, RBMConfig
from gmlib.viz.chain_explorer import ChainExplorer, chain_explorer, thin_trajectory, trajectory_kind
from gmlib.viz.plots import image_grid


def decode(png: bytes) -> torch.Tensor:
    return torch.tensor(np.asarray(Image.open(io.BytesIO(png)).convert("L")), dtype=torch.float32) / 255


def test_image_state_at_the_slider_step_is_drawn():
    """Does moving the slider to step t draw exactly the grid of the images of step t?"""
    g = torch.Generator().manual_seed(0)
    traj = torch.rand(6, 5, 1, 4, 4, generator=g)  # (T, B, C, H, W)
    ex = ChainExplorer(traj, nrow=5, scale=1)
    before = ex.image.value
    ex.step.value = 3
    assert ex.image.value != before
    expected = image_grid(traj[3], nrow=5, pad_value=0.5)[0]  # grey gaps between the images
    torch.testing.assert_close(decode(ex.image.value), expected, atol=1 / 255 + 1e-6, rtol=0)
    assert "step 3" in ex.caption.value and "state 4 of 6" in ex.caption.value


def test_images_without_a_channel_axis_and_max_images():
    """Are (T, B, H, W) images accepted, and only the first max_images chains drawn?"""
    traj = torch.zeros(3, 10, 4, 4)
    traj[:, 2:] = 1.0
    ex = ChainExplorer(traj, nrow=2, scale=1, max_images=2)
    assert ex.kind == "images"
    assert decode(ex.image.value).shape == image_grid(torch.zeros(2, 1, 4, 4), nrow=2)[0].shape


def test_points_slider_redraws_and_reports_the_mean_energy():
    """For 2D points over an energy contour, does a slider move redraw the plot and put the step number and the
    chains' mean energy at that step in the caption?"""
    def energy(x):
        return 0.5 * x.pow(2).sum(dim=1)

    g = torch.Generator().manual_seed(0)
    traj = torch.randn(11, 50, 2, generator=g) * torch.linspace(3, 0.5, 11)[:, None, None]  # (T, B, 2)
    ex = ChainExplorer(traj, steps=range(0, 110, 10), background=energy_grid(energy, res=20), energy_fn=energy)
    first = ex.image.value
    ex.step.value = 7
    assert ex.image.value != first and bytes(ex.image.value).startswith(b"\x89PNG")
    assert "step 70" in ex.caption.value
    assert f"{energy(traj[7]).mean().item():.3f}" in ex.caption.value
    assert ex.xlim == (-4.0, 4.0) and ex.ylim == (-4.0, 4.0)  # the background's extent
    no_trail = ex.image.value
    ex.trail.value = 5
    assert ex.image.value != no_trail


def test_points_limits_follow_the_data_without_a_background():
    """Without a background, do the axes cover the chains (fixed for all steps)?"""
    traj = torch.stack([torch.full((20, 2), 10.0 + t) for t in range(4)])
    ex = ChainExplorer(traj)
    assert ex.xlim[0] < 10.0 and ex.xlim[1] > 13.0
    ex.step.value = 2
    assert ex.xlim[0] < 10.0 and ex.xlim[1] > 13.0


def test_thinning_keeps_first_and_last_and_labels_steps():
    """Does thin_trajectory keep at most max_frames states, the first and last among them, with true step numbers?"""
    traj = torch.arange(101.0)[:, None, None].expand(101, 3, 2)
    states, labels = thin_trajectory(traj, 11)
    assert states.shape == (11, 3, 2) and labels[0] == 0 and labels[-1] == 100
    assert [int(s[0, 0]) for s in states] == labels
    ex = chain_explorer(traj, max_frames=11)
    assert ex.step.max == 10 and ex.steps == labels
    same, all_labels = thin_trajectory(traj[:5], 11, steps=[0, 2, 4, 6, 8])
    assert same.shape[0] == 5 and all_labels == [0, 2, 4, 6, 8]


def test_bad_inputs_are_refused_clearly():
    """Are a wrong trajectory shape, a non-tensor and a mismatched step list refused with clear messages?"""
    with pytest.raises(ValueError, match="trajectory must be"):
        trajectory_kind(torch.zeros(5, 4, 3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        trajectory_kind([[0.0, 1.0]])
    with pytest.raises(ValueError, match="steps has 2 entries"):
        ChainExplorer(torch.zeros(3, 4, 2), steps=[0, 1])


def test_works_with_the_course_samplers():
    """Does the explorer take an RBM's Gibbs trajectory and an EBM's Langevin trajectory as they come?"""
    torch.manual_seed(0)
    rbm = RBM(RBMConfig(num_visible=64, num_hidden=8))
    _, gibbs = rbm.sample(4, num_steps=5, generator=torch.Generator().manual_seed(0), return_trajectory=True)
    ex = chain_explorer(gibbs)
    ex.step.value = 5
    assert ex.kind == "images" and ex.image.value
    ebm = EBM(EBMConfig(kind="2d", hidden=(8,), num_steps=4, buffer_size=0))
    _, langevin = ebm.sample(16, generator=torch.Generator().manual_seed(0), return_trajectory=True)
    ex2 = chain_explorer(langevin, background=energy_grid(ebm, res=10), energy_fn=ebm.energy, trail=3)
    ex2.step.value = 4
    assert ex2.kind == "points" and "mean energy" in ex2.caption.value
