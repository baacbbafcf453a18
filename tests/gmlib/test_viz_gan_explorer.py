"""GAN training snapshots and their explorer, headless (callbacks fire synchronously when a widget value is set)."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from gmlib.models.gan import GAN, GANConfig, discriminator_surface, gan_step
from gmlib.train import fit
from gmlib.viz.gan_explorer import (
    GANSnapshots,
    gan_training_explorer,
    load_or_train_with_snapshots,
    plot_snapshots,
)

TINY_2D = dict(data="2d", latent_dim=2, hidden=(16, 16))
TINY_IMAGE = dict(data="image", image_shape=(1, 8, 8), latent_dim=4, channels=4)


def _train(model, snaps, steps=6):
    x = torch.randn(64, 2) if model.config.data == "2d" else torch.rand(64, 1, 8, 8)
    loader = torch.utils.data.DataLoader(x, batch_size=8)
    snaps.capture(model, 0)
    return fit(
        model,
        loader,
        optimizers=model.optimizers(),
        step_fn=gan_step,
        max_steps=steps,
        callbacks=[snaps],
        device="cpu",
        progress=False,
        fast=False,
    )


def _recorded(loss="nonsaturating", every=2, **kind):
    torch.manual_seed(0)
    model = GAN(GANConfig(**(kind or TINY_2D), loss=loss))
    snaps = GANSnapshots(every=every, num_samples=32, resolution=12)
    _train(model, snaps)
    return model, snaps


def test_snapshots_record_samples_and_the_surface_every_few_steps():
    """Are snapshots taken at step 0 and every `every` steps, with the fixed-z samples and D's probability
    on the grid of the final model equal to what the model gives now?"""
    model, snaps = _recorded()
    assert snaps.steps == [0, 2, 4, 6]
    last = snaps[-1]
    assert last.samples.shape == (32, 2) and last.surface.shape == (12, 12)
    torch.testing.assert_close(last.samples, model.sample(32, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(last.surface, discriminator_surface(model, (-3, 3), (-3, 3), 12)[2])
    assert {"d_loss", "g_loss"} <= set(last.logs)
    assert not torch.equal(snaps[0].samples, last.samples)  # G moved between the first and last snapshot
    assert snaps.probability and ((last.surface > 0) & (last.surface < 1)).all()


def test_capture_restores_train_mode_and_leaves_batch_norm_statistics_alone():
    """Does a snapshot of a DCGAN (batch norm in G) keep the running statistics and the train/eval mode?"""
    torch.manual_seed(0)
    model = GAN(GANConfig(**TINY_IMAGE)).train()
    before = {k: v.clone() for k, v in model.G.state_dict().items()}
    snap = GANSnapshots(every=1, num_samples=9).capture(model, 3)
    assert model.training and snap.surface is None and snap.samples.shape == (9, 1, 8, 8)
    assert all(torch.equal(before[k], v) for k, v in model.G.state_dict().items())


def test_wgan_snapshots_store_raw_critic_scores():
    """Does a WGAN-GP run record the critic's raw scores rather than probabilities?"""
    model, snaps = _recorded(loss="wgan-gp")
    assert not snaps.probability
    torch.testing.assert_close(snaps[-1].surface, discriminator_surface(model, (-3, 3), (-3, 3), 12, probability=False)[2])


def test_save_and_load_round_trip(tmp_path):
    """Do saved snapshots load back (weights_only) with the same steps, tensors, logs and grid?"""
    _, snaps = _recorded(loss="wgan-gp")
    snaps.save(tmp_path / "s.pt")
    other = GANSnapshots()
    other.load(tmp_path / "s.pt")
    assert other.steps == snaps.steps and other.probability == snaps.probability and other.resolution == 12
    for a, b in zip(snaps, other, strict=True):
        torch.testing.assert_close(a.samples, b.samples)
        torch.testing.assert_close(a.surface, b.surface)
        assert a.logs == b.logs
    torch.testing.assert_close(other.xs, snaps.xs)


def test_load_or_train_with_snapshots_trains_once_then_loads_both(tmp_path, monkeypatch):
    """Does the second call load the weights and the snapshots instead of training again?"""
    monkeypatch.setenv("GMLIB_CACHE", str(tmp_path))
    calls = []

    def run():
        torch.manual_seed(0)
        model = GAN(GANConfig(**TINY_2D))
        snaps = GANSnapshots(every=3, num_samples=16, resolution=8)

        def train(m):
            calls.append(1)
            return _train(m, snaps)

        model, history = load_or_train_with_snapshots("t", model, train, snaps, config=model.config, data_key=1)
        return model, history, snaps

    m1, h1, s1 = run()
    m2, h2, s2 = run()
    assert len(calls) == 1 and s1.steps == s2.steps == [0, 3, 6] and h2.num_steps == h1.num_steps == 6
    torch.testing.assert_close(s1[-1].surface, s2[-1].surface)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    # a damaged snapshot file: train again, and do not fail
    (side,) = tmp_path.glob("*-snapshots.pt")
    side.write_bytes(b"not a checkpoint")
    _, _, s3 = run()
    assert len(calls) == 2 and s3.steps == [0, 3, 6]


def _png_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_explorer_slider_and_run_selector_redraw():
    """Do the snapshot slider and the run selector change the picture and the caption (step, describe)?"""
    _, ns = _recorded()
    _, wgan = _recorded(loss="wgan-gp", every=3)
    ex = gan_training_explorer(
        {"ns": ns, "wgan": wgan}, real=torch.randn(50, 2), describe=lambda s: f"mean x {s.samples[:, 0].mean():.3f}"
    )
    assert ex.slider.max == 3 and "step 0" in ex.caption.value and "mean x" in ex.caption.value
    first = ex.image.value
    ex.slider.value = 3
    assert ex.image.value != first and "step 6" in ex.caption.value
    ex.run_select.value = "wgan"  # 3 snapshots: the slider's range shrinks to 0..2
    assert ex.slider.max == 2 and ex.slider.value == 2
    assert "<b>wgan</b>" in ex.caption.value and "step 6" in ex.caption.value
    assert ex.image.value != first and _png_size(ex.image.value)[0] > 100
    assert ex.status.value == ""


def test_explorer_shows_image_grids_for_image_gans_and_refuses_empty_runs():
    """Does an image GAN's explorer show a sample grid per snapshot, and is an empty run refused clearly?"""
    torch.manual_seed(0)
    model = GAN(GANConfig(**TINY_IMAGE))
    snaps = GANSnapshots(every=3, num_samples=16)
    _train(model, snaps)
    ex = gan_training_explorer(snaps, nrow=4, scale=2)
    assert ex.run_select.layout.display == "none"
    # 4 x 4 images of 8 pixels with 1 pixel of padding, scale 2
    assert _png_size(ex.image.value) == (2 * (4 * 9 + 1), 2 * (4 * 9 + 1))
    before = ex.image.value
    ex.slider.value = ex.slider.max
    assert ex.image.value != before
    with pytest.raises(ValueError, match="at least one snapshot"):
        gan_training_explorer(GANSnapshots())


def test_plot_snapshots_draws_one_panel_per_chosen_snapshot():
    """Does plot_snapshots draw evenly chosen snapshots (first and last included), titled by step?"""
    _, snaps = _recorded(every=1)
    fig = plot_snapshots(snaps, count=3, real=torch.randn(20, 2))
    assert [ax.get_title() for ax in fig.axes] == ["step 0", "step 3", "step 6"]
    with pytest.raises(ValueError, match="no snapshots"):
        plot_snapshots(GANSnapshots())
