"""Feature networks for sample-quality metrics: small classifiers trained once, deterministically, and cached.

FID, KID, precision/recall and the Inception-style score need an embedding in which distances mean something.
Inception-v3 features need a download and 299x299 inputs; for 8x8 digits and 28x28 MNIST the course trains its
own classifier on the training split (fixed seed, fixed schedule, on the CPU) and uses its penultimate layer
(`FEATURE_DIM` values) as the embedding and its softmax as p(y|x). Numbers are comparable between runs of this
course, not with published FIDs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import load_or_train
from ..data import load_digits, load_mnist
from ..train import History, fit

__all__ = ["FeatureNetConfig", "FeatureNet", "feature_network", "classifier_accuracy", "FEATURE_DIM"]

FEATURE_DIM = 64


@dataclass
class FeatureNetConfig:
    dataset: str = "digits"  # or "mnist"
    image_size: int = 8
    channels: tuple[int, int] = (32, 64)
    feature_dim: int = FEATURE_DIM
    num_classes: int = 10
    epochs: int = 30
    lr: float = 2e-3
    seed: int = 0


class FeatureNet(nn.Module):
    """Two conv blocks, global average pooling, a `feature_dim` embedding, a linear classifier."""

    def __init__(self, config: FeatureNetConfig):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.GroupNorm(8, c1), nn.SiLU(),
            nn.Conv2d(c1, c2, 3, padding=1, stride=2), nn.GroupNorm(8, c2), nn.SiLU(),
            nn.Conv2d(c2, c2, 3, padding=1), nn.GroupNorm(8, c2), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(c2, config.feature_dim), nn.SiLU(),
        )
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def _check(self, x: Tensor) -> Tensor:
        s = self.config.image_size
        if x.dim() == 3:
            x = x[:, None]
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, s, s):
            raise ValueError(f"the {self.config.dataset} feature network expects images (B, 1, {s}, {s}) in [0, 1], "
                             f"got shape {tuple(x.shape)}")
        return x.to(next(self.parameters()).dtype)

    def features(self, x: Tensor) -> Tensor:
        """Images (B, 1, S, S) in [0, 1] -> embeddings (B, feature_dim)."""
        return self.body(self._check(x))

    def forward(self, x: Tensor) -> Tensor:
        """Images -> class logits (B, num_classes)."""
        return self.head(self.features(x))

    def loss(self, batch) -> tuple[Tensor, dict[str, float]]:
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean().item()}


def _dataset(name: str, split: str):
    if name == "digits":
        return load_digits(split)
    if name == "mnist":
        return load_mnist(split)
    raise ValueError(f"no feature network for dataset {name!r}; choose 'digits' or 'mnist'")


@torch.no_grad()
def classifier_accuracy(net: FeatureNet, dataset) -> float:
    """Top-1 accuracy of `net` on a TensorDataset of (images, labels)."""
    x, y = dataset.tensors
    dev = next(net.parameters()).device
    correct = 0
    for i in range(0, len(x), 1024):
        correct += (net(x[i : i + 1024].to(dev)).argmax(1).cpu() == y[i : i + 1024]).sum().item()
    return correct / len(x)


def feature_network(dataset: str = "digits", *, device: torch.device | str = "cpu") -> FeatureNet:
    """The cached feature network for `dataset` ("digits" or "mnist"), trained on first use.

    Training is deterministic (seeded, CPU, one data order); the cache key covers the configuration, so every
    machine computes metrics with the same network. `net.test_accuracy` holds its accuracy on the test split.
    """
    config = FeatureNetConfig(dataset=dataset, image_size=8 if dataset == "digits" else 28,
                              epochs=30 if dataset == "digits" else 2)
    train_set = _dataset(dataset, "train")

    def train(net: FeatureNet) -> History:
        g = torch.Generator().manual_seed(config.seed)
        loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True, generator=g)
        return fit(net, loader, epochs=config.epochs, lr=config.lr, device="cpu", progress=False, fast=False)

    torch.manual_seed(config.seed)
    net = FeatureNet(config)
    # never shortened by FAST mode: every run must measure with the same network
    net, _ = load_or_train(f"features-{dataset}", net, train, config=config, data_key=(dataset, len(train_set)),
                           fast=False)
    net.test_accuracy = classifier_accuracy(net, _dataset(dataset, "test"))
    net.requires_grad_(False)
    return net.to(device).eval()
