"""Building blocks shared by the model families."""

from .blocks import MLP, randn_like_with
from .conv import ConvDecoder, ConvEncoder, ResidualBlock, conv_sizes
from .masked import MaskedConv2d, causal_mask
from .unet import MLPDenoiser, SinusoidalTimeEmbedding, UNet

__all__ = ["MLP", "randn_like_with", "ConvDecoder", "ConvEncoder", "ResidualBlock", "conv_sizes", "MaskedConv2d",
           "causal_mask", "MLPDenoiser", "SinusoidalTimeEmbedding", "UNet"]
