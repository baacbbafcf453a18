"""Plots and explorer widgets."""

from .plots import image_grid, plot_history, show_images, to_png
from .widgets import LatentExplorer, latent_explorer

__all__ = ["image_grid", "plot_history", "show_images", "to_png", "LatentExplorer", "latent_explorer"]
