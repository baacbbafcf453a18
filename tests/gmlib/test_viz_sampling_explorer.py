"""The sampling explorers of lesson 04, headless: setting a widget's value fires its callbacks synchronously."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from gmlib.models.pixelcnn import PixelCNN, PixelCNNConfig, raster_order
from gmlib.models.text import CharTransformer, CharTransformerConfig, CharVocab, NGramModel
from gmlib.nn.masked import input_gradient_map
from gmlib.viz.sampling_explorer import (
    CURRENT_RGB,
    UNFILLED_RGB,
    filtered_next_probs,
    pixel_sampling_explorer,
    text_sampling_explorer,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_pixelcnn(levels=3, shape=(1, 3, 4)) -> PixelCNN:
    torch.manual_seed(0)
    cfg = PixelCNNConfig(image_shape=shape, levels=levels, channels=8, num_layers=2, first_kernel_size=3)
    return PixelCNN(cfg).eval()


def png_pixels(png: bytes, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 of a PNG that shows one H x W image enlarged by an integer factor."""
    img = Image.open(io.BytesIO(png)).convert("RGB").resize((width, height), Image.NEAREST)
    return np.asarray(img)


def rgb255(colour) -> np.ndarray:
    return np.round(np.array(colour) * 255).astype(int)


# ---------------------------------------------------------------------------------------------- pixels
def test_step_slider_shows_the_partial_image_and_the_current_pixel():
    """At step t, are the first t pixels of the selected sample its drawn values, pixel t red and the rest
    tinted as unfilled; at the last step is the image the finished sample?"""
    model = tiny_pixelcnn()
    ex = pixel_sampling_explorer(model, num_samples=3, seed=5)
    x = model.sample(3, generator=torch.Generator().manual_seed(5))
    ex.which.value = 1
    for t in (0, 5, 11):
        ex.step.value = t
        got = png_pixels(ex.zoom.value, 3, 4).reshape(12, 3).astype(int)
        truth = (x[1, 0].flatten() * 255).round().int().numpy()
        assert (abs(got[:t, 0] - truth[:t]) <= 1).all()
        assert (abs(got[t] - rgb255(CURRENT_RGB)) <= 1).all()
        assert (abs(got[t + 1 :] - rgb255(UNFILLED_RGB)) <= 1).all()
    ex.step.value = 12
    got = png_pixels(ex.zoom.value, 3, 4)[..., 0].flatten().astype(int)
    assert (abs(got - (x[1, 0].flatten() * 255).round().int().numpy()) <= 1).all()
    assert "all 12 pixels drawn" in ex.info.value


def test_panel_shows_the_model_conditional_of_the_current_pixel():
    """Are the probabilities printed for step t the softmax of the model's logits at pixel t, computed on the
    image with only the first t pixels filled?"""
    model = tiny_pixelcnn(levels=3)
    ex = pixel_sampling_explorer(model, num_samples=2, seed=1)
    x = model.sample(2, generator=torch.Generator().manual_seed(1))
    k = (x * 2).round().long()
    t, i = 6, 1
    r, c = raster_order(3, 4)[t].tolist()
    partial = k.clone().view(2, -1)
    partial[:, t:] = 0
    with torch.no_grad():
        expected = torch.softmax(model.logits_from_levels(partial.view(2, 1, 3, 4))[i, :, 0, r, c], 0)
    ex.which.value, ex.step.value = i, t
    printed = [float(v) for v in re.findall(r"padding-left:6px'>([0-9.]+)<", ex.info.value)]
    torch.testing.assert_close(torch.tensor(printed), expected.float(), atol=1e-3, rtol=0)
    assert f"pixel (row {r}, col {c})" in ex.info.value
    assert f"drawn level {int(k[i, 0, r, c])}" in ex.info.value


def test_temperature_and_seed_regenerate_the_samples():
    """Do the temperature slider and the seed redraw the samples exactly as model.sample does?"""
    model = tiny_pixelcnn()
    ex = pixel_sampling_explorer(model, num_samples=4, seed=0)
    ex.step.value = 12  # every pixel drawn (at step 0 all samples look alike)
    ex.temperature.value = 0.0
    torch.testing.assert_close(ex.trajectory[-1], model.sample(4, temperature=0.0))
    ex.temperature.value = 1.5
    ex.seed.value = 9
    expected = model.sample(4, temperature=1.5, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(ex.trajectory[-1], expected)
    before = ex.image.value
    ex.seed.value = 10
    assert ex.image.value != before


def test_receptive_field_overlay_marks_only_what_the_pixel_sees():
    """With the checkbox on, are exactly the pixels with a nonzero input gradient tinted, all of them earlier
    than the current pixel, and does the overlay vanish when it is switched off?"""
    model = tiny_pixelcnn(levels=2, shape=(1, 5, 5))
    ex = pixel_sampling_explorer(model, num_samples=1)
    t = 13
    ex.step.value = t
    plain = ex.render(0)
    ex.show_field.value = True
    tinted = ex.render(0)
    r, c = raster_order(5, 5)[t].tolist()
    seen = input_gradient_map(model.network, torch.zeros(1, 1, 5, 5), r, c) != 0
    changed = (tinted - plain).abs().sum(0) > 1e-6
    changed[r, c] = False
    assert torch.equal(changed, seen) and seen.any()
    assert not seen.flatten()[t:].any()
    ex.show_field.value = False
    assert torch.equal(ex.render(0), plain)


def test_conditional_model_is_refused():
    model = PixelCNN(PixelCNNConfig(image_shape=(1, 3, 3), levels=2, channels=4, num_layers=1, num_classes=2))
    with pytest.raises(ValueError, match="unconditional"):
        pixel_sampling_explorer(model)


# ---------------------------------------------------------------------------------------------- text
def text_models():
    text = "the cat sat on the mat. the dog sat on the log. a cat and a dog."
    vocab = CharVocab.from_text(text)
    ngram = NGramModel(vocab, order=3, k=0.05).fit_counts(text)
    torch.manual_seed(0)
    model = CharTransformer(CharTransformerConfig(chars=vocab.chars, block_size=16, n_layer=1, n_head=2, n_embd=16))
    with torch.no_grad():
        model.head.weight.normal_(0.0, 1.0)
    return {"trigram": ngram, "transformer": model}


def test_text_sample_follows_the_widgets():
    """Is the shown text the model's sample for the widgets' prompt, temperature, top-k and seed, and do the
    sliders, the model choice and the resample button change it?"""
    models = text_models()
    ex = text_sampling_explorer(models, prompt="the ", length=30, seed=3)
    assert ex.model_select.value == "transformer"
    expected = models["transformer"].sample(1, 30, prompt="the ", generator=torch.Generator().manual_seed(3))[0]
    assert ex.sample == expected and "<b>the </b>" in ex.text.value
    ex.temperature.value = 0.0
    greedy = models["transformer"].sample(1, 30, prompt="the ", temperature=0.0)[0]
    assert ex.sample == greedy
    ex.temperature.value = 0.8
    ex.top_k.value = 1
    assert ex.sample == greedy  # top-1 is greedy too
    ex.model_select.value = "trigram"
    assert (
        ex.sample
        == models["trigram"].sample(
            1, 30, prompt="the ", temperature=0.8, top_k=1, generator=torch.Generator().manual_seed(3)
        )[0]
    )
    before = ex.sample
    ex.top_k.value = 0
    ex.temperature.value = 1.5
    ex._on_resample()
    assert ex.seed.value == 4 and ex.sample != before


def test_next_character_panel_is_the_filtered_softmax():
    """Is the panel's distribution softmax(top_k(log p / T)) of the model's next_probs, with the entropy
    printed, and one-hot at T = 0?"""
    models = text_models()
    ex = text_sampling_explorer(models, prompt="the c", temperature=0.5, top_k=3)
    p = models["transformer"].next_probs("the c")
    logits = p.log() / 0.5
    keep = logits.topk(3).indices
    expected = torch.zeros_like(p)
    expected[keep] = torch.softmax(logits[keep], 0)
    torch.testing.assert_close(ex.next_distribution, expected)
    entropy = float(-(expected[keep] * expected[keep].log2()).sum())
    assert f"entropy {entropy:.2f} bits" in ex.dist.value and "3 possible characters" in ex.dist.value
    cold = filtered_next_probs(models["trigram"], "the c", 0.0, None)
    assert cold.sum() == 1 and cold.max() == 1
    assert int(cold.argmax()) == int(models["trigram"].next_probs("the c").argmax())


def test_unknown_prompt_character_is_reported_not_raised():
    """Does a prompt character outside the vocabulary show a message instead of raising in the callback?"""
    ex = text_sampling_explorer(text_models(), prompt="the", length=10)
    kept = ex.sample
    ex.prompt.value = "the Z"
    assert "cannot sample" in ex.status.value and "'Z'" in ex.status.value
    assert ex.sample == kept
    ex.prompt.value = "the"
    assert ex.status.value == ""
