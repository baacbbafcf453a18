"""The explorer widgets as a student sees them: JupyterLab in headless Chromium, a lesson run from the top with
every exercise answered (FAST mode), a slider dragged with the mouse, and the picture redrawn by the kernel.

Catches what headless widget tests cannot: a front end that cannot render the widget ("Error displaying
widget: model not found" after an ipywidgets upgrade), a missing lab extension, a callback that fails only
through the comm, a notebook that stops half-way in Run All.
"""

from __future__ import annotations

import json
import sys

import nbformat

from .lab import drag_slider, settled_src, slider, widget_output
from .notebooks import answered_notebook

BINDER_MB = 2048  # the memory a Binder session gets: JupyterLab's server and every kernel together


def open_answered(lab, lesson: str) -> float:
    """Write `lesson` with every exercise answered into the served copy, open it and Run All; returns seconds.
    Saves the peak memory of the server and its kernel (memory.json) and checks it against Binder's limit."""
    path = f"{lesson}/answered_{lesson}.ipynb"
    nbformat.write(answered_notebook(lesson), lab.server.root / path)
    lab.open(path)
    seconds = lab.run_all()
    if sys.platform.startswith("linux"):
        kernel = next(s["kernel"]["id"] for s in lab.server.api("sessions") if s["path"] == path)
        peaks = lab.server.memory_mb(kernel)  # this lesson's kernel, as a student who closed the others has
        lab.artifacts.mkdir(parents=True, exist_ok=True)
        (lab.artifacts / "memory.json").write_text(json.dumps({"lesson": lesson, "mode": "fast",
                                                               "run_all_s": round(seconds, 1), "peak_mb": peaks}))
        assert any(k.startswith("kernel") for k in peaks), f"no kernel {kernel} found under the server: {peaks}"
        assert sum(peaks.values()) < BINDER_MB, f"{lesson}: server and kernel peaks {peaks} exceed Binder's {BINDER_MB} MB"
    return seconds


def drag_and_compare(lab, output, label: str, to: float, name: str) -> tuple[str, str]:
    """Drag slider `label` of the explorer in `output`; assert its first visible image changed; screenshots."""
    image = output.locator("img.widget-image:visible").first
    image.scroll_into_view_if_needed()
    before_src = settled_src(lab, image)
    before_png = lab.shot(f"{name}-before", output)
    values = drag_slider(lab, slider(output, label), to)
    after_src = settled_src(lab, image, previous=before_src)
    after_png = lab.shot(f"{name}-after", output)
    assert after_src != before_src, f"{name}: the image kept its source after {label} moved {values}"
    assert after_png != before_png, f"{name}: the explorer looks the same after {label} moved {values}"
    # drawn with the picture's own proportions (a flex row stretches an image to its height unless told not to)
    natural_w, natural_h, shown_w, shown_h = image.evaluate(
        "img => [img.naturalWidth, img.naturalHeight, img.clientWidth, img.clientHeight]"
    )
    assert shown_w > 0 and shown_h > 0, f"{name}: the image is not shown ({shown_w} x {shown_h} px)"
    assert abs(shown_w / shown_h - natural_w / natural_h) < 0.02 * natural_w / natural_h, (
        f"{name}: a {natural_w} x {natural_h} picture is drawn {shown_w} x {shown_h} px (stretched)"
    )
    return values


def assert_no_widget_problems(lab, output) -> None:
    assert not lab.widget_problems(), f"the page shows a widget error: {lab.widget_problems()}"
    status = output.inner_text()
    assert "explorer error" not in status, status
    assert not lab.code_errors(), lab.code_errors()


def test_latent_explorer_slider_redraws_the_decoded_image(lab):
    """Lesson 02: does dragging z[0] of the latent explorer show a new decoded image, without widget errors?"""
    open_answered(lab, "02_vae")
    output = widget_output(lab, "z[0]")
    before, after = drag_and_compare(lab, output, "z[0]", 0.95, "latent-z0")
    assert float(after) > float(before)
    assert_no_widget_problems(lab, output)


def test_diffusion_explorer_sliders_redraw_forward_and_reverse_steps(lab):
    """Lesson 07: does the diffusion-step explorer redraw x_t when t moves (forward tab) and the sampler's state
    when the step moves (reverse tab), without widget errors?"""
    open_answered(lab, "07_diffusion")
    output = widget_output(lab, "t")  # the first diffusion explorer of the lesson
    drag_and_compare(lab, output, "t", 0.9, "diffusion-forward-t")
    output.locator(".lm-TabBar-tab").filter(has_text="reverse").first.click()
    drag_and_compare(lab, output, "step", 0.5, "diffusion-reverse-step")
    assert_no_widget_problems(lab, output)
