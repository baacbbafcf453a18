"""Model families, one per module."""

from . import ae, ddpm, ebm, flows, gan, pixelcnn, rbm, text, vae, vqvae

__all__ = ["ae", "ddpm", "ebm", "flows", "gan", "pixelcnn", "rbm", "text", "vae", "vqvae"]
