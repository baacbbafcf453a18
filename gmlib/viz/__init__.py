"""Plots and explorer widgets."""

from .inpaint_explorer import InpaintExplorer, inpaint_explorer
from .judge_widget import JudgeWidget, judge_widget, wilson_interval
from .plots import image_grid, plot_history, show_images, to_png
from .traversal_explorer import TraversalExplorer, traversal_explorer
from .widgets import LatentExplorer, latent_explorer

__all__ = ["image_grid", "plot_history", "show_images", "to_png", "LatentExplorer", "latent_explorer",
           "JudgeWidget", "judge_widget", "wilson_interval", "InpaintExplorer", "inpaint_explorer"]
__all__ += ["TraversalExplorer", "traversal_explorer"]
