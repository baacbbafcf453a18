"""The two-alternative forced-choice widget and its Wilson interval, headless (button clicks fire synchronously)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import binomtest

from gmlib.viz import JudgeWidget, judge_widget, wilson_interval


def _score_test_interval(k: int, n: int, z: float) -> tuple[float, float]:
    """Brute force: every p0 on a fine grid that the score test |k/n - p0| <= z sqrt(p0 (1 - p0) / n) accepts."""
    p0 = np.linspace(0.0, 1.0, 400_001)
    accepted = p0[np.abs(k / n - p0) <= z * np.sqrt(p0 * (1 - p0) / n)]
    return float(accepted.min()), float(accepted.max())


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (5, 10), (10, 10), (1, 1), (17, 40), (0, 3), (99, 200)])
def test_wilson_interval_inverts_the_score_test_and_matches_scipy(k, n):
    """Is the interval the set of rates the score test accepts, and equal to scipy's Wilson interval?"""
    low, high = wilson_interval(k, n)
    ref_low, ref_high = _score_test_interval(k, n, 1.96)
    assert low == pytest.approx(ref_low, abs=1e-5) and high == pytest.approx(ref_high, abs=1e-5)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    # scipy uses the exact 97.5 % quantile 1.95996..., we use 1.96
    assert low == pytest.approx(ci.low, abs=2e-4) and high == pytest.approx(ci.high, abs=2e-4)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_edge_cases_and_bad_input():
    """No answers give (0, 1); a larger z widens the interval; impossible counts raise a clear error."""
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow, wide = wilson_interval(6, 20, z=1.0), wilson_interval(6, 20, z=2.58)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]
    for k, n in [(5, 3), (-1, 4), (1, -1)]:
        with pytest.raises(ValueError, match="successes"):
            wilson_interval(k, n)
    with pytest.raises(ValueError, match="z must be positive"):
        wilson_interval(1, 2, z=0.0)


def _images(n, value):
    return torch.full((n, 1, 8, 8), value)


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_clicks_are_recorded_and_the_report_counts_fooled_trials():
    """Does clicking record each choice, show the next pair, and report fooled / answered with the interval?"""
    real, fake = _images(5, 1.0), _images(7, 0.0)  # real images white, generated black: the side is visible
    judge = judge_widget(real, fake, num_trials=6, seed=3, scale=2)
    assert judge.report.value == "no answers yet" and "trial 1 of 6" in judge.progress.value
    first = judge.image.value
    # the real image sits on the recorded side: its half of the picture is white
    pixels = _png(first)
    half = pixels.shape[1] // 2
    bright_left = pixels[:, :half].mean() > pixels[:, half:].mean()
    assert bright_left == (judge.trials[0].real_side == "left")
    # answer: wrong on trials 0 and 1 (fooled), right on the rest
    for i, trial in enumerate(judge.trials):
        wrong = "right" if trial.real_side == "left" else "left"
        (judge.left_button if (wrong if i < 2 else trial.real_side) == "left" else judge.right_button).click()
        if i == 0:
            assert "trial 2 of 6" in judge.progress.value
    r = judge.results()
    assert (r["answered"], r["fooled"]) == (6, 2) and r["rate"] == pytest.approx(2 / 6)
    assert (r["low"], r["high"]) == wilson_interval(2, 6)
    assert "2 of 6" in judge.report.value and "Wilson" in judge.report.value
    assert judge.left_button.disabled and judge.right_button.disabled and "all 6" in judge.progress.value
    judge.answer("left")  # after the last trial: ignored
    assert judge.results()["answered"] == 6


def test_pairs_are_seeded_balanced_and_restart_clears_answers():
    """Do trials use every image before repeating one, come out the same for the same seed, and reset on restart?"""
    real, fake = torch.rand(4, 1, 8, 8), torch.rand(3, 1, 8, 8)
    a = JudgeWidget(real, fake, num_trials=12, seed=1)
    b = JudgeWidget(real, fake, num_trials=12, seed=1)
    assert [(t.real_index, t.fake_index, t.real_side) for t in a.trials] == \
        [(t.real_index, t.fake_index, t.real_side) for t in b.trials]
    assert sorted(t.real_index for t in a.trials[:4]) == [0, 1, 2, 3]
    assert sorted(t.fake_index for t in a.trials[:3]) == [0, 1, 2]
    assert {t.real_side for t in a.trials} == {"left", "right"}
    a.answer("left")
    a.answer("right")
    assert a.current == 2
    a.restart_button.click()
    assert a.current == 0 and a.report.value == "no answers yet"


def test_bad_input_is_refused_clearly():
    """Are wrong shapes, an empty set, zero trials and an unknown side refused with a message?"""
    with pytest.raises(ValueError, match="real must be images"):
        JudgeWidget(torch.rand(4, 8, 8), torch.rand(4, 1, 8, 8))
    with pytest.raises(ValueError, match="fake must be images"):
        JudgeWidget(torch.rand(4, 1, 8, 8), torch.rand(0, 1, 8, 8))
    with pytest.raises(ValueError, match="differ in shape"):
        JudgeWidget(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 6, 6))
    with pytest.raises(ValueError, match="num_trials"):
        JudgeWidget(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8), num_trials=0)
    with pytest.raises(ValueError, match="'left' or 'right'"):
        JudgeWidget(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)).answer("up")
