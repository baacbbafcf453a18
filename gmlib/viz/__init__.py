"""Plots and the explorer widgets of the lessons (each explorer is also importable from its own module)."""

from .capacity_explorer import CapacityExplorer, capacity_explorer
from .chain_explorer import ChainExplorer, chain_explorer
from .denoise_explorer import DenoiseExplorer, denoise_explorer
from .diffusion_explorer import DiffusionExplorer, diffusion_explorer
from .flow_explorer import FlowExplorer, flow_explorer
from .gan_explorer import GANTrainingExplorer, gan_training_explorer
from .inpaint_explorer import InpaintExplorer, inpaint_explorer
from .judge_widget import JudgeWidget, judge_widget, wilson_interval
from .plots import image_grid, image_view, plot_history, show_images, to_png
from .sampling_explorer import PixelSamplingExplorer, TextSamplingExplorer, pixel_sampling_explorer, text_sampling_explorer
from .traversal_explorer import TraversalExplorer, traversal_explorer
from .widgets import LatentExplorer, latent_explorer

__all__ = [
    "image_grid", "image_view", "plot_history", "show_images", "to_png",
    "LatentExplorer", "latent_explorer",  # 02
    "CapacityExplorer", "capacity_explorer",  # 00
    "DenoiseExplorer", "denoise_explorer",  # 01
    "GANTrainingExplorer", "gan_training_explorer",  # 03
    "PixelSamplingExplorer", "pixel_sampling_explorer", "TextSamplingExplorer", "text_sampling_explorer",  # 04
    "FlowExplorer", "flow_explorer",  # 05
    "ChainExplorer", "chain_explorer",  # 06
    "DiffusionExplorer", "diffusion_explorer",  # 07
    "JudgeWidget", "judge_widget", "wilson_interval",  # 08
    "InpaintExplorer", "inpaint_explorer",  # 09
    "TraversalExplorer", "traversal_explorer",  # 10
]
