"""The latent traversal explorer, headless: setting a widget's value fires its callbacks synchronously."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from gmlib.viz.traversal_explorer import latent_traversal, traversal_explorer

D = 3  # latent dimensions of the stand-in decoder


def rows_decoder(z: torch.Tensor) -> torch.Tensor:
    """A stand-in decoder: image row j (of D) is filled with (z[j] + 3) / 6, so each latent draws one row."""
    values = ((z + 3) / 6).clamp(0, 1)  # (n, D)
    return values[:, None, :, None].expand(-1, 1, D, D).contiguous()  # (n, 1, D, D)


def png_values(data: bytes, size: int) -> torch.Tensor:
    small = Image.open(io.BytesIO(data)).convert("L").resize((size, size), Image.NEAREST)
    return torch.tensor(np.asarray(small), dtype=torch.float32) / 255


def make(**kwargs):
    codes = torch.tensor([[0.0, 1.5, -1.5], [3.0, -6.0, 0.6], [-0.3, 0.3, 2.4]])  # (N, D), one entry out of range
    return codes, traversal_explorer(rows_decoder, codes, **kwargs)


def test_image_shows_the_decoded_starting_code():
    """Does the image show decode(codes[index]) and the sliders hold that code?"""
    codes, ex = make(index=2)
    assert [s.value for s in ex.sliders] == pytest.approx(codes[2].tolist())
    shown = png_values(ex.image.value, D)
    assert (shown - rows_decoder(codes[2:3])[0, 0]).abs().max() <= 1 / 255 + 1e-6
    assert ex.status.value == ""


def test_moving_one_slider_changes_only_its_row():
    """Does moving z[1] re-render the image, changing row 1 and leaving the other rows alone?"""
    _, ex = make()
    before_image, before_grid = png_values(ex.image.value, D), ex.grid.value
    ex.sliders[1].value = -3.0
    after = png_values(ex.image.value, D)
    assert torch.allclose(after[1], torch.zeros(D), atol=1e-6)  # (z + 3) / 6 = 0
    assert torch.equal(after[0], before_image[0]) and torch.equal(after[2], before_image[2])
    assert ex.grid.value != before_grid  # the other rows of the traversal grid start from the new code


def test_traversal_rows_sweep_one_dimension_each():
    """Is row j of the traversal grid dimension j swept over [-span, span] with the others fixed?"""
    _, ex = make(span=2.0, num_steps=5)
    grid = ex.traversals()
    assert grid.shape == (D, 5, 1, D, D)
    z = ex.current_z()
    values = torch.linspace(-2.0, 2.0, 5)
    for j in range(D):
        expected = torch.stack([rows_decoder(z.clone().index_put_((torch.tensor(j),), v)[None])[0] for v in values])
        torch.testing.assert_close(grid[j], expected)


def test_changing_the_index_loads_that_code_clamped_to_the_range():
    """Does choosing another image set the sliders to its code (clipped to [-span, span]) and redraw?"""
    _, ex = make(span=3.0)
    before = ex.image.value
    ex.index.value = 1
    assert [s.value for s in ex.sliders] == pytest.approx([3.0, -3.0, 0.6])
    assert ex.image.value != before


def test_factor_table_names_the_most_informative_factor():
    """Does the table name, per latent, the factor with the largest I / H, escaping the names?"""
    mi = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.05, 0.05]], dtype=torch.float64)  # (D, K = 2)
    entropy = torch.tensor([1.0, 3.0], dtype=torch.float64)
    _, ex = make(mi=mi, factor_entropy=entropy, factor_names=["size", "x<pos>"])
    tracked = ex.tracked_factors()
    assert [name for name, _ in tracked] == ["x<pos>", "size", "size"]  # 0.9 / 3 = 0.3 > 0.1
    assert [value for _, value in tracked] == pytest.approx([0.3, 0.8, 0.05])
    assert "x&lt;pos&gt;" in ex.table.value and "x<pos>" not in ex.table.value
    _, plain = make()
    assert plain.tracked_factors() is None and "tracks" not in plain.table.value


def test_latent_traversal_copies():
    """Does latent_traversal return (S, d) copies with one dimension replaced, leaving z unchanged?"""
    z = torch.tensor([1.0, 2.0, 3.0])
    out = latent_traversal(z, 1, torch.tensor([-1.0, 0.0]))
    torch.testing.assert_close(out, torch.tensor([[1.0, -1.0, 3.0], [1.0, 0.0, 3.0]]))
    assert z.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="dim"):
        latent_traversal(z, 3, torch.tensor([0.0]))


def test_bad_arguments_raise_clear_errors():
    """Are wrongly shaped codes, tables and step counts refused with a message that names them?"""
    codes = torch.zeros(4, D)
    with pytest.raises(ValueError, match="codes"):
        traversal_explorer(rows_decoder, torch.zeros(D))
    with pytest.raises(ValueError, match="mi"):
        traversal_explorer(rows_decoder, codes, mi=torch.zeros(D + 1, 2))
    with pytest.raises(ValueError, match="factor names"):
        traversal_explorer(rows_decoder, codes, mi=torch.zeros(D, 2), factor_names=["a"])
    with pytest.raises(ValueError, match="factor_entropy"):
        traversal_explorer(rows_decoder, codes, mi=torch.zeros(D, 2), factor_entropy=torch.ones(3))
    with pytest.raises(ValueError, match="num_steps"):
        traversal_explorer(rows_decoder, codes, num_steps=1)


def test_decoder_error_is_shown_in_the_widget():
    """Does an exception in the decoder appear in the status line (and still propagate)?"""
    calls = {"n": 0}

    def flaky(z):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("decoder broke")
        return rows_decoder(z)

    ex = traversal_explorer(flaky, torch.zeros(2, D))
    with pytest.raises(RuntimeError):
        ex.sliders[0].value = 1.0
    assert "decoder broke" in ex.status.value
