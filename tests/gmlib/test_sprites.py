"""The procedural sprites: reproducible, in [0, 1], and their factors can be read back from the images."""

from __future__ import annotations

import math

import pytest
import torch

from gmlib.data.sprites import (
    BASE_RADIUS,
    SPRITE_FACTOR_NAMES,
    SPRITE_SHAPES,
    load_sprites,
    render_sprite,
    render_sprites,
    sprite_factors,
)

FACTORS = sprite_factors()


def _centroid(img: torch.Tensor) -> tuple[float, float]:
    """Intensity-weighted centre (x, y) of an image (1, S, S), as fractions of the side (pixel centres)."""
    s = img.shape[-1]
    coords = (torch.arange(s, dtype=torch.float64) + 0.5) / s
    w = img[0].double()
    return float((w.sum(0) * coords).sum() / w.sum()), float((w.sum(1) * coords).sum() / w.sum())


def test_factor_names_and_counts():
    """Are the factors shape, scale, rotation, x, y with 3, 6, 10, 8, 8 values, rotations in [0, 2 pi)?"""
    assert tuple(FACTORS) == SPRITE_FACTOR_NAMES == ("shape", "scale", "rotation", "x", "y")
    assert [len(v) for v in FACTORS.values()] == [3, 6, 10, 8, 8]
    assert FACTORS["shape"] == list(SPRITE_SHAPES)
    assert min(FACTORS["rotation"]) == 0 and max(FACTORS["rotation"]) < 2 * math.pi


def test_full_grid_enumerates_every_combination_once():
    """Does load_sprites() hold all 3*6*10*8*8 factor combinations, each once, with images in [0, 1]?"""
    ds = load_sprites(size=16)
    images, factors = ds.tensors
    assert images.shape == (11520, 1, 16, 16) and images.dtype == torch.float32
    assert factors.shape == (11520, 5) and factors.dtype == torch.long
    assert len(torch.unique(factors, dim=0)) == 11520
    assert images.min() >= 0 and images.max() <= 1
    assert (images.flatten(1).max(1).values > 0.5).all()  # even the smallest sprite at 16x16 shows


def test_random_draws_are_deterministic_by_seed_and_match_their_factors():
    """Same seed, same data; another seed, other data; and does each image equal a fresh render of its factors?"""
    a, b, c = load_sprites(64, seed=3), load_sprites(64, seed=3), load_sprites(64, seed=4)
    torch.testing.assert_close(a.tensors[0], b.tensors[0])
    assert torch.equal(a.tensors[1], b.tensors[1])
    assert not torch.equal(a.tensors[1], c.tensors[1])
    images, factors = a.tensors
    for i in range(0, 64, 9):
        values = [FACTORS[name][int(k)] for name, k in zip(SPRITE_FACTOR_NAMES, factors[i], strict=True)]
        torch.testing.assert_close(images[i], render_sprite(*values, size=32))


@pytest.mark.parametrize("shape", SPRITE_SHAPES)
def test_centroid_of_the_sprite_is_at_the_position_factor(shape):
    """Is the intensity centroid within half a pixel of (x, y), for positions across the grid and any rotation?"""
    size = 32
    for x in FACTORS["x"][::3]:
        for y in FACTORS["y"][1::3]:
            for rotation in (0.0, 1.3):
                cx, cy = _centroid(render_sprite(shape, 1.0, rotation, x, y, size))
                assert abs(cx - x) * size < 0.5 and abs(cy - y) * size < 0.5, (shape, x, y, cx, cy)


def test_area_grows_with_scale_and_matches_the_closed_forms():
    """Does the area grow with the scale factor, and equal (2a)^2 for the square and pi*a*b for the ellipse?"""
    size = 64
    for shape in SPRITE_SHAPES:
        areas = [render_sprite(shape, s, 0.0, 0.5, 0.5, size).sum().item() for s in FACTORS["scale"]]
        assert all(a1 > a0 for a0, a1 in zip(areas[:-1], areas[1:], strict=True)), (shape, areas)
    for s in FACTORS["scale"]:
        unit = BASE_RADIUS * s * size  # pixels per shape unit
        square = render_sprite("square", s, 0.0, 0.5, 0.5, size).sum().item()
        ellipse = render_sprite("ellipse", s, 0.0, 0.5, 0.5, size).sum().item()
        # the one-pixel ramp is exact along straight edges; each corner pixel may gain up to 1/4 pixel
        assert square == pytest.approx((2 * 0.55 * unit) ** 2, abs=1.0 + 1e-3)
        assert ellipse == pytest.approx(math.pi * 1.0 * 0.5 * unit**2, rel=0.03)


def test_different_shapes_have_different_areas():
    """At the same scale, are the three areas at least 10% apart (so shape is visible in the pixel count)?"""
    areas = sorted(render_sprite(s, 1.0, 0.7, 0.5, 0.5, 32).sum().item() for s in SPRITE_SHAPES)
    assert areas[1] > 1.1 * areas[0] and areas[2] > 1.1 * areas[1], areas


def test_rotation_symmetries():
    """Does a square look the same rotated by 90 degrees and an ellipse by 180, while a heart does not?"""
    for x, y, rot in [(0.5, 0.5, 0.0), (0.3, 0.62, 0.4)]:
        sq = render_sprite("square", 0.8, rot, x, y)
        torch.testing.assert_close(render_sprite("square", 0.8, rot + math.pi / 2, x, y), sq, atol=1e-4, rtol=0)
        el = render_sprite("ellipse", 0.8, rot, x, y)
        torch.testing.assert_close(render_sprite("ellipse", 0.8, rot + math.pi, x, y), el, atol=1e-4, rtol=0)
        assert not torch.allclose(render_sprite("ellipse", 0.8, rot + math.pi / 2, x, y), el, atol=0.1)
        heart = render_sprite("heart", 0.8, rot, x, y)
        assert (render_sprite("heart", 0.8, rot + math.pi, x, y) - heart).abs().max() > 0.5


def test_rotation_is_counter_clockwise_as_displayed():
    """Rotated by a quarter turn counter-clockwise, does an ellipse lying along x stand up along y?"""
    flat, upright = render_sprite("ellipse", 1.0, 0.0, 0.5, 0.5), render_sprite("ellipse", 1.0, math.pi / 2, 0.5, 0.5)
    assert flat[0].sum(0).gt(0).sum() > 1.5 * flat[0].sum(1).gt(0).sum()  # wider than tall
    torch.testing.assert_close(upright[0], flat[0].t(), atol=1e-4, rtol=0)
    # a small positive angle lifts the right end: more mass in the upper-right quadrant than in the lower-right
    tilted = render_sprite("ellipse", 1.0, 0.5, 0.5, 0.5, 32)[0]
    assert tilted[:16, 16:].sum() > 2 * tilted[16:, 16:].sum()


def test_heart_points_down():
    """Is the heart upright (lobes at the top, tip at the bottom: more mass above its centroid row than below)?"""
    img = render_sprite("heart", 1.0, 0.0, 0.5, 0.5, 64)[0]
    rows = img.sum(1)
    widest = int(rows.argmax())
    assert widest < 32  # the widest row (the lobes) lies above the centre


def test_binary_rendering_is_the_half_threshold_of_the_antialiased_one():
    """Is the binary image exactly 1[anti-aliased >= 0.5] (both read the same signed distance)?"""
    ds_a, ds_b = load_sprites(50, seed=1, size=16), load_sprites(50, seed=1, size=16, antialias=False)
    binary = ds_b.tensors[0]
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(binary, (ds_a.tensors[0] >= 0.5).float())


def test_sprites_off_the_image_are_cut_or_vanish():
    """Is a sprite whose centre lies on the border cut in half, and one far outside the image simply absent?"""
    inside = render_sprite("square", 1.0, 0.0, 0.5, 0.5, 32).sum()
    half = render_sprite("square", 1.0, 0.0, 0.0, 0.5, 32).sum()
    assert half == pytest.approx(inside.item() / 2, rel=0.05)
    assert render_sprite("heart", 1.0, 0.0, 3.0, -2.0, 32).sum() == 0
    with pytest.raises(ValueError):
        render_sprite("triangle", 1.0, 0.0, 0.5, 0.5)
    with pytest.raises(ValueError):
        render_sprites(torch.tensor([3]), torch.ones(1), torch.zeros(1), torch.ones(1) / 2, torch.ones(1) / 2)
