"""Autoencoders: the corruption and error pieces against hand computations, the conv blocks' shapes, the
denoising wiring, the latent Gaussian sampler, and (slow) that training really reconstructs and denoises."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gmlib.models.ae import (
    AEConfig,
    Autoencoder,
    corrupt,
    denoising_loss,
    encode_dataset,
    reconstruction_error,
    threshold_at_fpr,
)
from gmlib.nn.conv import ConvDecoder, ConvEncoder, ResidualBlock, conv_sizes


# ------------------------------------------------------------------------------------------------ conv blocks
def test_conv_sizes_halve_with_ceiling():
    """Does each stride-2 stage map a side n to ceil(n / 2)?"""
    assert conv_sizes(8, 3) == [8, 4, 2, 1]
    assert conv_sizes(28, 3) == [28, 14, 7, 4]
    assert conv_sizes(32, 2) == [32, 16, 8]
    assert conv_sizes(5, 0) == [5]


@pytest.mark.parametrize("image_shape", [(1, 8, 8), (1, 28, 28), (1, 32, 32), (3, 32, 32), (3, 28, 32)])
@pytest.mark.parametrize("channels", [(8,), (8, 16), (4, 8, 16)])
def test_conv_encoder_decoder_shapes(image_shape, channels):
    """Do the encoder and decoder map every image size to the code and back, as vectors and as feature maps,
    and do the feature sizes agree with an actual stride-2 convolution's?"""
    x = torch.rand(2, *image_shape)
    enc, dec = ConvEncoder(image_shape, channels, 5), ConvDecoder(5, channels[::-1], image_shape)
    assert enc(x).shape == (2, 5)
    assert dec(enc(x)).shape == (2, *image_shape)
    fmap_enc = ConvEncoder(image_shape, channels, None)
    h = fmap_enc(x)
    assert h.shape == (2, *fmap_enc.feature_shape)
    # the reference: apply plain nn.Conv2d(3, stride 2, padding 1) len(channels) times
    ref = x
    for _ in channels:
        ref = nn.functional.conv2d(ref, torch.zeros(1, ref.shape[1], 3, 3), stride=2, padding=1)
    assert h.shape[2:] == ref.shape[2:]
    fmap_dec = ConvDecoder(None, channels[::-1], image_shape)
    assert fmap_dec.input_shape == fmap_enc.feature_shape
    assert fmap_dec(torch.rand(2, channels[-1], *h.shape[2:])).shape == (2, *image_shape)


def test_residual_block_is_identity_plus_a_branch():
    """Does the residual block keep the shape, and return x itself when its last convolution is zero?"""
    block = ResidualBlock(6, hidden=3)
    x = torch.randn(2, 6, 5, 7)
    assert block(x).shape == x.shape
    nn.init.zeros_(block.block[-1].weight)
    nn.init.zeros_(block.block[-1].bias)
    torch.testing.assert_close(block(x), x)


def test_conv_blocks_take_a_norm_factory():
    """Is a normalisation layer inserted after each hidden convolution when a factory is given?"""
    enc = ConvEncoder((1, 8, 8), (4, 8), 3, norm=nn.BatchNorm2d)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in enc.modules()) == 2
    dec = ConvDecoder(3, (8, 4), (1, 8, 8), norm=lambda c: nn.GroupNorm(2, c))
    assert sum(isinstance(m, nn.GroupNorm) for m in dec.modules()) == 2
    assert dec(enc(torch.rand(3, 1, 8, 8))).shape == (3, 1, 8, 8)


# ------------------------------------------------------------------------------------------------ the pieces
def test_reconstruction_error_matches_a_hand_computation():
    """Is the per-example error the mean over pixels of the squared difference, or of the binary cross entropy?"""
    x_hat = torch.rand(4, 1, 3, 3).clamp(0.01, 0.99)
    x = torch.rand(4, 1, 3, 3)
    mse = [sum((float(a) - float(b)) ** 2 for a, b in zip(x_hat[i].flatten(), x[i].flatten(), strict=True)) / 9
           for i in range(4)]
    torch.testing.assert_close(reconstruction_error(x_hat, x), torch.tensor(mse))
    bce = -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).flatten(1).mean(1)
    torch.testing.assert_close(reconstruction_error(x_hat, x, "bce"), bce)
    with pytest.raises(ValueError, match="reconstruction kind"):
        reconstruction_error(x_hat, x, "l1")


def test_gaussian_corruption_adds_noise_of_the_given_std():
    """Is x_tilde - x zero-mean with standard deviation noise_std, and reproducible with a generator?"""
    x = torch.rand(400, 1, 8, 8)
    a = corrupt(x, 0.3, "gaussian", generator=torch.Generator().manual_seed(0))
    b = corrupt(x, 0.3, "gaussian", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    noise = a - x
    assert abs(noise.mean().item()) < 0.01 and noise.std().item() == pytest.approx(0.3, rel=0.02)
    assert corrupt(x, 0.0) is x


def test_masking_corruption_zeroes_a_fraction_and_keeps_the_rest():
    """Does masking zero about a fraction p of the pixels and leave every other pixel unchanged?"""
    x = torch.rand(400, 1, 8, 8) + 0.5  # no zeros in the clean data
    x_tilde = corrupt(x, 0.25, "masking", generator=torch.Generator().manual_seed(1))
    dropped = x_tilde == 0
    assert dropped.float().mean().item() == pytest.approx(0.25, abs=0.01)
    assert torch.equal(x_tilde[~dropped], x[~dropped])
    with pytest.raises(ValueError, match="drop probability"):
        corrupt(x, 1.5, "masking")
    with pytest.raises(ValueError, match="noise kind"):
        corrupt(x, 0.1, "salt")


# ------------------------------------------------------------------------------------------------ the model
@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("kind", ["mse", "bce"])
def test_reconstruction_error_of_the_model_is_per_example(arch, kind):
    """Is model.reconstruction_error(x) the per-example error of decoder(encoder(x)), computed by hand?"""
    torch.manual_seed(0)
    model = Autoencoder(AEConfig(latent_dim=3, arch=arch, hidden=(8, 16), reconstruction=kind, noise_std=0.5))
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        x_hat = torch.sigmoid(model.decoder(model.encoder(x)))  # no corruption for the anomaly score
    if kind == "mse":
        ref = torch.stack([((x_hat[i] - x[i]) ** 2).sum() / 64 for i in range(5)])
    else:
        ref = torch.stack([-(x[i] * x_hat[i].log() + (1 - x[i]) * (1 - x_hat[i]).log()).sum() / 64 for i in range(5)])
    score = model.reconstruction_error(x)
    assert score.shape == (5,)
    torch.testing.assert_close(score, ref)
    torch.testing.assert_close(model.reconstruct(x), x_hat)


@pytest.mark.parametrize("noise", ["gaussian", "masking"])
def test_denoising_loss_corrupts_only_the_input(noise):
    """Does the encoder see the corrupted x_tilde while the error compares the output with the CLEAN x?"""
    torch.manual_seed(0)
    model = Autoencoder(AEConfig(latent_dim=3, hidden=(16,), noise_std=0.4, noise=noise))
    seen = {}
    model.encoder.register_forward_pre_hook(lambda mod, args: seen.setdefault("input", args[0].detach()))
    x = torch.rand(6, 1, 8, 8)
    loss, logs = model.loss((x, torch.zeros(6)), generator=torch.Generator().manual_seed(3))
    x_tilde = corrupt(x, 0.4, noise, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(seen["input"], x_tilde)
    assert not torch.allclose(x_tilde, x)
    with torch.no_grad():
        out = model(x_tilde)
    torch.testing.assert_close(loss, ((out - x) ** 2).flatten(1).mean(1).mean())
    assert not torch.allclose(loss, ((out - x_tilde) ** 2).mean())
    assert logs["rec"] == pytest.approx(loss.item())
    assert logs["noisy"] == pytest.approx(((x_tilde.clamp(0, 1) - x) ** 2).mean().item(), rel=1e-5)


def test_plain_autoencoder_does_not_corrupt():
    """With noise_std = 0, is the loss the error of reconstructing x from x itself?"""
    model = Autoencoder(AEConfig(latent_dim=2, hidden=(8,)))
    x = torch.rand(4, 1, 8, 8)
    loss, logs = model.loss(x)
    torch.testing.assert_close(loss, model.reconstruction_error(x).mean())
    assert set(logs) == {"rec"}


def test_injected_functions_are_used_and_change_the_cache_key():
    """Are an injected corruption and error function used, and does each change the cache key?"""
    calls = []

    def my_corrupt(x, noise_std, kind, generator=None):
        calls.append(("corrupt", noise_std, kind))
        return x * 0.5

    def my_error(x_hat, x):
        calls.append(("error",))
        return (x_hat - x).abs().flatten(1).sum(1)

    cfg = AEConfig(latent_dim=2, hidden=(8,), noise_std=0.2, noise="masking")
    model = Autoencoder(cfg, corrupt_fn=my_corrupt, reconstruction_error_fn=my_error)
    x = torch.rand(3, 1, 8, 8)
    loss, _ = model.loss(x)
    assert calls[:2] == [("corrupt", 0.2, "masking"), ("error",)]
    with torch.no_grad():
        torch.testing.assert_close(loss, (model(x * 0.5) - x).abs().flatten(1).sum(1).mean())
    keys = {str(model.cache_key()), str(Autoencoder(cfg).cache_key()),
            str(Autoencoder(cfg, corrupt_fn=my_corrupt).cache_key())}
    assert len(keys) == 3
    assert model.cache_key() == Autoencoder(cfg, corrupt_fn=my_corrupt, reconstruction_error_fn=my_error).cache_key()


def test_invalid_configs_are_named():
    """Is a wrong arch, noise kind or reconstruction kind reported with its name?"""
    with pytest.raises(ValueError, match="arch"):
        Autoencoder(AEConfig(arch="rnn"))
    with pytest.raises(ValueError, match="noise"):
        Autoencoder(AEConfig(noise="salt"))
    with pytest.raises(ValueError, match="reconstruction"):
        Autoencoder(AEConfig(reconstruction="l1"))


def test_fit_latent_gaussian_matches_the_codes_and_sample_uses_it():
    """Are the fitted mean/std the codes' empirical ones (from a tensor or a loader of (x, y) batches), and are
    samples decoded from mean + std * eps with eps from the generator?"""
    torch.manual_seed(0)
    model = Autoencoder(AEConfig(latent_dim=3, hidden=(16,)))
    x = torch.rand(50, 1, 8, 8)
    with torch.no_grad():
        z = model.encode(x)
    mean, std = model.fit_latent_gaussian(x)
    torch.testing.assert_close(mean, z.mean(0))
    torch.testing.assert_close(std, z.std(0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(50)), batch_size=7)
    mean2, std2 = model.fit_latent_gaussian(loader)
    torch.testing.assert_close(mean2, mean)
    torch.testing.assert_close(std2, std)
    s1 = model.sample(4, generator=torch.Generator().manual_seed(2))
    eps = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model.decode_mean(mean + std * eps)
    torch.testing.assert_close(s1, ref)
    assert s1.shape == (4, 1, 8, 8) and 0 <= s1.min() and s1.max() <= 1
    assert "latent_mean" in model.state_dict()



# ------------------------------------------------------------------------------------------------ sums and losses
def test_reconstruction_error_sum_is_the_squared_distance():
    """With reduction="sum", is the error ||x_hat - x||^2 per example (64 times the mean for 8x8 images)?"""
    x_hat, x = torch.rand(5, 1, 8, 8), torch.rand(5, 1, 8, 8)
    dist2 = torch.stack([torch.dist(x_hat[i], x[i]) ** 2 for i in range(5)])
    torch.testing.assert_close(reconstruction_error(x_hat, x, reduction="sum"), dist2)
    torch.testing.assert_close(reconstruction_error(x_hat, x, "bce", "sum"), 64 * reconstruction_error(x_hat, x, "bce"))
    with pytest.raises(ValueError, match="reduction"):
        reconstruction_error(x_hat, x, reduction="max")
    with pytest.raises(ValueError, match="reduction"):
        Autoencoder(AEConfig(reduction="max"))


@pytest.mark.parametrize("noise", ["gaussian", "masking"])
def test_denoising_loss_is_the_batch_mean_error_against_the_clean_input(noise):
    """Is denoising_loss the mean over the batch of ||g(f(x_tilde)) - x||^2, x_tilde drawn with the generator,
    and the plain autoencoder loss for noise_std = 0?"""
    x = torch.rand(6, 1, 8, 8)
    shrink = lambda t: 0.5 * t  # noqa: E731 - a stand-in reconstruction
    loss = denoising_loss(shrink, x, 0.3, noise, generator=torch.Generator().manual_seed(4), reduction="sum")
    x_tilde = corrupt(x, 0.3, noise, generator=torch.Generator().manual_seed(4))
    ref = sum(((0.5 * x_tilde[i] - x[i]) ** 2).sum() for i in range(6)) / 6
    assert loss.dim() == 0
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(denoising_loss(shrink, x, 0.0), ((0.5 * x - x) ** 2).mean())


def test_injected_loss_fn_replaces_the_loss_and_changes_the_cache_key():
    """Does the model train on an injected loss_fn(model, x, noise_std, kind, generator=...), and does it enter
    the cache key only when set (so the keys of models without one are unchanged)?"""
    calls = []

    def my_loss(reconstruct, x, noise_std, kind, generator=None):
        calls.append((noise_std, kind))
        return (reconstruct(x) - x).abs().sum() * 0 + 7.0

    cfg = AEConfig(latent_dim=2, hidden=(8,), noise_std=0.2, noise="masking", reduction="sum")
    model = Autoencoder(cfg, loss_fn=my_loss)
    loss, logs = model.loss((torch.rand(3, 1, 8, 8), torch.zeros(3)))
    assert calls == [(0.2, "masking")] and loss.item() == 7.0 and logs["rec"] == 7.0 and "noisy" in logs
    assert set(Autoencoder(cfg).cache_key()) == {"corrupt_fn", "reconstruction_error_fn"}
    assert model.cache_key()["loss_fn"] != "none"
    bad = Autoencoder(cfg, loss_fn=lambda r, x, s, k, generator=None: (r(x) - x).flatten(1).sum(1))
    with pytest.raises(ValueError, match="scalar"):
        bad.loss(torch.rand(3, 1, 8, 8))


def test_sum_reduction_config_scales_the_model_error():
    """Does AEConfig(reduction="sum") make the model's loss and anomaly score sums over pixels?"""
    torch.manual_seed(0)
    mean_model = Autoencoder(AEConfig(latent_dim=2, hidden=(8,)))
    sum_model = Autoencoder(AEConfig(latent_dim=2, hidden=(8,), reduction="sum"))
    sum_model.load_state_dict(mean_model.state_dict())
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(sum_model.reconstruction_error(x), 64 * mean_model.reconstruction_error(x))
    torch.testing.assert_close(sum_model.loss(x)[0], 64 * mean_model.loss(x)[0])



def test_encode_dataset_batches_in_order_without_gradients():
    """Are the codes those of encoding everything at once, from batches of at most batch_size, in order, with
    gradients off?"""
    lin = nn.Linear(64, 3)
    seen = []

    def encode(b):
        seen.append((len(b), torch.is_grad_enabled()))
        return lin(b.flatten(1))

    x = torch.rand(10, 1, 8, 8)
    z = encode_dataset(encode, x, batch_size=4)
    assert seen == [(4, False), (4, False), (2, False)] and not z.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(z, lin(x.flatten(1)))
    with pytest.raises(ValueError, match="batch_size"):
        encode_dataset(encode, x, batch_size=0)


def test_threshold_at_fpr_is_the_smallest_threshold_within_the_rate():
    """Is the threshold the smallest normal score with at most floor(fpr * n) normal scores above it, checked by
    trying every candidate, ties included?"""
    g = torch.Generator().manual_seed(0)
    for scores in (torch.randn(37, generator=g), torch.randint(0, 5, (40,), generator=g).float()):
        for fpr in (0.0, 0.03, 0.1, 0.25, 0.5, 0.99, 1.0):
            allowed = int(fpr * len(scores))
            ok = [float(t) for t in scores if int((scores > t).sum()) <= allowed]
            assert threshold_at_fpr(scores, fpr) == min(ok)
    with pytest.raises(ValueError, match="fpr"):
        threshold_at_fpr(torch.rand(5), 1.5)


# ------------------------------------------------------------------------------------------------ training
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_autoencoder_overfits_one_batch(arch):
    """Does a small AE drive the reconstruction error on one fixed batch of digits close to zero?"""
    from gmlib.data import load_digits

    torch.manual_seed(0)
    x = load_digits("train").tensors[0][:32]
    model = Autoencoder(AEConfig(latent_dim=16, arch=arch, hidden=(128,) if arch == "mlp" else (32, 64)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = model.reconstruction_error(x).mean().item()
    for _ in range(250):
        opt.zero_grad()
        model.loss(x)[0].backward()
        opt.step()
    end = model.reconstruction_error(x).mean().item()
    assert start > 0.05 and end < 0.01, (start, end)


@pytest.mark.slow
def test_denoising_autoencoder_removes_noise():
    """On held-out digits with fresh noise, is a trained denoising AE's output closer to the clean image than
    the noisy input itself (the identity), for Gaussian noise?"""
    from gmlib.data import digits_loader, load_digits
    from gmlib.train import fit

    torch.manual_seed(0)
    model = Autoencoder(AEConfig(latent_dim=16, hidden=(256, 128), noise_std=0.3))
    fit(model, digits_loader("train", batch_size=64), epochs=15, lr=2e-3, device="cpu", progress=False)
    x = load_digits("test").tensors[0]
    x_tilde = corrupt(x, 0.3, "gaussian", generator=torch.Generator().manual_seed(9))
    identity = reconstruction_error(x_tilde.clamp(0, 1), x).mean().item()
    denoised = reconstruction_error(model.reconstruct(x_tilde), x).mean().item()
    assert denoised < 0.6 * identity, (denoised, identity)
