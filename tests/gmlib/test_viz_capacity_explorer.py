"""The capacity explorer, headless: setting a widget's value fires its callbacks synchronously."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from scipy.special import logsumexp

from gmlib.data import sample_toy2d
from gmlib.models.density import GaussianMixture, GaussianMixtureConfig, kde_log_prob
from gmlib.viz.capacity_explorer import capacity_explorer, density_grid, plot_density

CAPACITIES = {"histogram": (2, 8, 40), "kde": (1.0, 0.2, 0.02), "gmm": (1, 3, 40)}


def make_explorer(**kwargs):
    x_train = sample_toy2d("8gaussians", 120, generator=torch.Generator().manual_seed(0))
    x_test = sample_toy2d("8gaussians", 300, generator=torch.Generator().manual_seed(1))
    kwargs = {"capacities": CAPACITIES, "num_samples": 100, "resolution": 30, **kwargs}
    return capacity_explorer(x_train, x_test, **kwargs)


def test_density_grid_orientation_and_plot():
    """Is log_p[i, j] the density at (xs[j], ys[i]), and does plot_density draw an image?"""
    xs, ys, log_p = density_grid(lambda p: -p[:, 0] + 10 * p[:, 1], (-1, 1, -2, 2), resolution=5)
    assert log_p.shape == (5, 5)
    assert log_p[4, 0].item() == pytest.approx(1 + 20) and log_p[0, 4].item() == pytest.approx(-1 - 20)
    fig = Figure()
    ax = fig.add_subplot()
    plot_density(ax, lambda p: torch.zeros(len(p)), points=torch.zeros(3, 2), title="flat")
    assert len(ax.images) == 1 and ax.get_title() == "flat"


def test_starts_drawn_and_redraws_when_the_capacity_moves():
    """Is there a PNG and a summary at the start, and do both change when the capacity slider moves?"""
    ex = make_explorer()
    assert Image.open(io.BytesIO(ex.image.value)).format == "PNG"
    before_image, before_info = ex.image.value, ex.info.value
    assert "histogram, 8 bins" in before_info
    ex.capacity.value = 2
    assert ex.image.value != before_image and ex.info.value != before_info and "2 bins" in ex.info.value
    assert ex.status.value == ""


def test_family_switch_changes_the_slider_and_hides_the_pseudo_count():
    """Does choosing another family offer its own capacities and hide the histogram-only pseudo-count?"""
    ex = make_explorer()
    assert ex.alpha.layout.display == ""
    ex.family.value = "gmm"
    assert list(ex.capacity.options) == [("K = 1", 1), ("K = 3", 3), ("K = 40", 40)]
    assert ex.capacity.value == 3 and "K = 3" in ex.info.value
    assert ex.alpha.layout.display == "none"
    ex.family.value = "kde"
    assert ex.capacity.value == 0.2 and "h = 0.2" in ex.info.value


def test_scores_are_the_models_log_likelihoods():
    """Are the KDE scores a direct log-sum-exp over the kernels, and the mixture's those of a mixture fitted the
    same way?"""
    ex = make_explorer()
    sq = ((ex.x_test.numpy()[:, None, :] - ex.x_train.numpy()[None]) ** 2).sum(-1)  # (M, N)
    for h in CAPACITIES["kde"]:
        # (sklearn's KernelDensity underflows far from the data at h = 0.02, so the reference is written out)
        ref = (logsumexp(-sq / (2 * h * h), axis=1) - math.log(len(ex.x_train)) - math.log(2 * math.pi * h * h)).mean()
        assert ex.score("kde", h)[1] == pytest.approx(ref, rel=1e-8)
    gmm = GaussianMixture(GaussianMixtureConfig(3, 2))
    gmm.fit_em(ex.x_train, generator=torch.Generator().manual_seed(0), fast=False)
    assert ex.score("gmm", 3) == pytest.approx((gmm.log_prob(ex.x_train).mean().item(),
                                                gmm.log_prob(ex.x_test).mean().item()))


def test_curves_show_overfitting():
    """Does the training log-likelihood rise with capacity while the most flexible KDE and mixture lose on test?"""
    ex = make_explorer()
    for family in ("kde", "gmm"):
        train, test = np.array(ex.curve(family)).T
        assert (np.diff(train) > 0).all()
        assert test[-1] < test.max()


def test_empty_histogram_bins_give_minus_infinity_and_the_pseudo_count_fixes_it():
    """With pseudo-count 0 and many bins, is the test log-likelihood -inf and said so, and finite with alpha > 0?"""
    ex = make_explorer(alpha=0.0)
    ex.capacity.value = 40
    assert ex.score("histogram", 40, 0.0)[1] == -math.inf
    assert "density 0" in ex.info.value
    ex.alpha.value = 0.1
    assert math.isfinite(ex.score("histogram", 40, 0.1)[1]) and "density 0" not in ex.info.value


def test_student_pieces_are_used():
    """Does the explorer evaluate the KDE with the kde_fn it is given?"""
    calls = []

    def my_kde(x, data, h):
        calls.append(h)
        return kde_log_prob(x, data, h)

    make_explorer(kde_fn=my_kde, families=("kde",))
    assert calls and set(calls) <= set(CAPACITIES["kde"])
    with pytest.raises(ValueError, match="families"):
        make_explorer(families=("nope",))
