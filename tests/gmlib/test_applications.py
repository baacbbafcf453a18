"""gmlib.applications against independent references (sklearn, gmlib.metrics, hand-computed cases)."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from gmlib.applications import (
    anomaly_scores,
    augment_with_generated,
    inpaint,
    repaint_merge,
    roc_curve,
    swap_class,
    trapezoid_auroc,
)
from gmlib.diffusion import DDPMScheduler, NoiseSchedule, make_beta_schedule
from gmlib.metrics import auroc
from gmlib.models.vae import VAE, VAEConfig


def test_roc_curve_matches_sklearn_with_ties():
    """Are the ROC points those of sklearn (all thresholds kept), and the trapezoid area its AUROC, with ties?"""
    g = torch.Generator().manual_seed(0)
    neg = torch.randint(0, 6, (40,), generator=g).double()
    pos = torch.randint(2, 9, (25,), generator=g).double()
    fpr, tpr = roc_curve(neg, pos)
    labels = [0] * len(neg) + [1] * len(pos)
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, torch.cat([neg, pos]).numpy(), drop_intermediate=False)
    torch.testing.assert_close(fpr, torch.tensor(sk_fpr))
    torch.testing.assert_close(tpr, torch.tensor(sk_tpr))
    area = trapezoid_auroc(fpr, tpr)
    assert area == pytest.approx(roc_auc_score(labels, torch.cat([neg, pos]).numpy()))
    assert area == pytest.approx(auroc(neg, pos))


def test_roc_curve_perfect_and_reversed():
    """Does a perfect separation give area 1 and a reversed one area 0?"""
    assert trapezoid_auroc(*roc_curve(torch.zeros(3), torch.ones(2))) == pytest.approx(1.0)
    assert trapezoid_auroc(*roc_curve(torch.ones(3), torch.zeros(2))) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least one"):
        roc_curve(torch.zeros(0), torch.ones(2))


def test_anomaly_scores_signs_and_reductions():
    """Are the scores the summed squared error, the NLL and the energy, one per image?"""
    x = torch.rand(4, 1, 3, 3)
    scores = anomaly_scores(x, lambda t: t * 0.5, lambda t: -t.flatten(1).sum(1), lambda t: t.flatten(1).mean(1))
    torch.testing.assert_close(scores["reconstruction"], (0.25 * x**2).flatten(1).sum(1))
    torch.testing.assert_close(scores["likelihood"], x.flatten(1).sum(1))
    torch.testing.assert_close(scores["energy"], x.flatten(1).mean(1))


def test_repaint_merge_keeps_known_pixels_noised_and_unknown_as_given():
    """Does the merge put the forward-noised x0 where mask = 1 and the model's state elsewhere?"""
    g = torch.Generator().manual_seed(1)
    x_unknown, x0, eps = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
    mask = (torch.rand(2, 1, 4, 4, generator=g) > 0.5).float()
    out = repaint_merge(x_unknown, x0, mask, 0.36, eps)
    expected = torch.where(mask.bool(), 0.6 * x0 + 0.8 * eps, x_unknown)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(repaint_merge(x_unknown, x0, mask, 1.0, eps), torch.where(mask.bool(), x0, x_unknown))


def test_inpaint_keeps_known_pixels_and_uses_the_model():
    """Does inpainting return x0 exactly on known pixels, and what the reverse process gives elsewhere (an
    eps-model for data that are all equal to c pulls the unknown pixels to c)?"""
    schedule = NoiseSchedule(make_beta_schedule("cosine", 100))
    scheduler = DDPMScheduler(schedule, clip_sample=1.0)
    scheduler.set_timesteps(50)
    c = 0.5
    ab = schedule.alpha_bar

    def eps_model(x_t, t):  # the exact eps for data concentrated at c: x_t = sqrt(ab) c + sqrt(1 - ab) eps
        a = ab[t].view(-1, *([1] * (x_t.dim() - 1))).to(x_t.dtype)
        return (x_t - a.sqrt() * c) / (1 - a).sqrt()

    x0 = torch.full((3, 1, 4, 4), -0.7)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1.0
    for resample in (1, 3):
        out = inpaint(eps_model, scheduler, x0, mask, resample=resample, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out[..., :2, :], x0[..., :2, :])
        torch.testing.assert_close(out[..., 2:, :], torch.full_like(out[..., 2:, :], c), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="mask"):
        inpaint(eps_model, scheduler, x0, torch.full((1, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="resample"):
        inpaint(eps_model, scheduler, x0, mask, resample=0)


def test_swap_class_decodes_the_encoder_mean_with_the_target_label():
    """Is the swap decode_mean(mu(x, y_source), y_target), with an int target broadcast?"""
    torch.manual_seed(0)
    cvae = VAE(VAEConfig(latent_dim=3, hidden=(16,), num_classes=4)).eval()
    x, y = torch.rand(5, 1, 8, 8), torch.tensor([0, 1, 2, 3, 0])
    out = swap_class(cvae, x, y, 2)
    mu, _ = cvae.encode(x, y)
    torch.testing.assert_close(out, cvae.decode_mean(mu, torch.full((5,), 2)).detach())
    torch.testing.assert_close(swap_class(cvae, x, y, y), cvae.reconstruct(x, y))


def test_augment_with_generated_aligns_labels_and_flags():
    """Do the generated rows carry the labels they were generated for, after the real rows, with flags?"""
    x_real, y_real = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])

    def generate(labels):
        return labels.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2) / 10

    x, y, is_gen = augment_with_generated(x_real, y_real, generate, per_class=2, num_classes=3)
    assert x.shape == (12, 1, 2, 2) and y.dtype == torch.long and is_gen.dtype == torch.bool
    assert torch.equal(x[:6], x_real) and torch.equal(y[:6], y_real) and not is_gen[:6].any() and is_gen[6:].all()
    torch.testing.assert_close(x[6:, 0, 0, 0], y[6:].float() / 10)
    assert torch.bincount(y[6:], minlength=3).tolist() == [2, 2, 2]
    x0, y0, g0 = augment_with_generated(x_real, y_real, generate, per_class=0, num_classes=3)
    assert torch.equal(x0, x_real) and not g0.any()
    with pytest.raises(ValueError, match="shape"):
        augment_with_generated(x_real, y_real, lambda labels: torch.zeros(len(labels), 4), 1, 3)
    assert math.isfinite(float(x.sum()))


def test_make_mask_kinds():
    """Does each mask kind hide the region it names, and the random one about `fraction` of the pixels?"""
    from gmlib.applications import MASK_KINDS, make_mask

    assert make_mask("bottom half", (1, 8, 8))[0, 4:].sum() == 0 and make_mask("bottom half", (1, 8, 8))[0, :4].all()
    assert make_mask("left half", (2, 1, 8, 8))[..., :4].sum() == 0
    centre = make_mask("centre square", (8, 8))
    assert centre[2:6, 2:6].sum() == 0 and centre.sum() == 48
    rand = make_mask("random pixels", (100, 8, 8), fraction=0.3, generator=torch.Generator().manual_seed(0))
    assert abs(float(1 - rand.mean()) - 0.3) < 0.02
    assert all(make_mask(k, (1, 8, 8)).shape == (1, 8, 8) for k in MASK_KINDS)
    with pytest.raises(ValueError, match="kind"):
        make_mask("stripes", (8, 8))
