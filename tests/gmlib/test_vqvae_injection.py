"""VQ-VAE with injected straight-through and loss functions: used in training, part of the cache key."""

from __future__ import annotations

import torch

from gmlib.models.vqvae import VQVAE, VQVAEConfig, straight_through, vq_losses


def _tiny(**kw) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(codebook_size=8, code_dim=4, channels=8, num_downsamples=1, num_res_blocks=1), **kw)


def test_injected_pieces_are_called_and_give_the_reference_loss():
    """Are the injected functions called by loss(), and with reference copies is the loss the reference loss?"""
    calls = []

    def my_st(z_e, z_q):
        calls.append("st")
        return straight_through(z_e, z_q)

    def my_losses(z_e, z_q):
        calls.append("losses")
        return vq_losses(z_e, z_q)

    x = torch.rand(4, 1, 8, 8)
    mine, ref = _tiny(straight_through_fn=my_st, vq_losses_fn=my_losses), _tiny()
    mine.eval(), ref.eval()
    torch.testing.assert_close(mine.loss(x)[0], ref.loss(x)[0])
    assert calls == ["st", "losses"]


def test_a_wrong_straight_through_blocks_the_encoder_gradient():
    """Does an injected straight-through that detaches z_e leave the encoder without reconstruction gradient?"""
    model = _tiny(straight_through_fn=lambda z_e, z_q: z_q.detach(),
                  vq_losses_fn=lambda z_e, z_q: (z_q.sum() * 0, z_e.sum() * 0))
    model.eval()
    model.loss(torch.rand(4, 1, 8, 8))[0].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.encoder.parameters())


def test_cache_key_names_injected_functions_only_when_given():
    """Is the default key unchanged (only quantize_fn), and does an injected function change it?"""
    assert set(_tiny().cache_key()) == {"quantize_fn"}
    assert _tiny(vq_losses_fn=vq_losses).cache_key() != _tiny().cache_key()
