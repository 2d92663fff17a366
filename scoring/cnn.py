"""The paper's joint-scoring network, in PyTorch.

Hirano et al. 2019, Fig. 1C: a 48×48 grey-scale clip; two 3×3 convolutions (padding 1, stride 1,
ReLU), each followed by 2×2 max-pooling (stride 2); then fully connected layers with one hidden
layer of 512 nodes (ReLU, dropout 0.5) — "three fully connected layers" counting the flattened
input, the hidden and the output layer; softmax cross-entropy. Batch normalisation only in the
erosion network. The paper does not give channel counts; 16 and 32 keep the committed weights
small.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

INPUT_SIZE = 48
CHANNELS = (16, 32)
HIDDEN = 512
Task = Literal["jsn", "erosion"]
CLASSES: dict[str, int] = {"jsn": 5, "erosion": 6}
_MIN_STD = 0.02  #: a flat clip is not stretched into noise


class JointNet(nn.Module):
    """Two convolution + pooling stages, one hidden fully connected layer, class logits."""

    def __init__(self, classes: int, batch_norm: bool) -> None:
        super().__init__()
        self.classes = classes
        c1, c2 = CHANNELS

        def stage(cin: int, cout: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=1, padding=1)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            return [*layers, nn.ReLU(inplace=True), nn.MaxPool2d(2, stride=2)]

        self.features = nn.Sequential(*stage(1, c1), *stage(c1, c2))
        flat = c2 * (INPUT_SIZE // 4) ** 2
        hidden: list[nn.Module] = [nn.Flatten(), nn.Linear(flat, HIDDEN)]
        if batch_norm:
            hidden.append(nn.BatchNorm1d(HIDDEN))
        self.classifier = nn.Sequential(
            *hidden, nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(HIDDEN, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classifier(self.features(x))
        return out


def build_net(task: Task) -> JointNet:
    return JointNet(CLASSES[task], batch_norm=task == "erosion")


def to_tensor(clips: np.ndarray) -> torch.Tensor:
    """uint8 N×48×48 clips → float N×1×48×48, each clip brought to zero mean and unit spread,
    so that how a site windows its images does not change the scores."""
    x = torch.from_numpy(np.ascontiguousarray(clips, dtype=np.float32)) / 255.0
    mean = x.mean(dim=(1, 2), keepdim=True)
    std = x.std(dim=(1, 2), keepdim=True).clamp_min(_MIN_STD)
    return ((x - mean) / std).unsqueeze(1)


@torch.inference_mode()
def predict_with_features(net: JointNet, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N × classes) and the hidden layer's activations (N × HIDDEN)."""
    if len(clips) == 0:
        return np.zeros((0, net.classes), np.float32), np.zeros((0, HIDDEN), np.float32)
    net.eval()
    hidden = net.classifier[:-2](net.features(to_tensor(clips)))  # up to the ReLU
    logits = net.classifier[-1](hidden)
    return (
        torch.softmax(logits, dim=1).numpy().astype(np.float32),
        hidden.numpy().astype(np.float32),
    )


@torch.inference_mode()
def predict(net: JointNet, clips: np.ndarray) -> np.ndarray:
    """Class probabilities, N×classes float32, in one batch."""
    if len(clips) == 0:
        return np.zeros((0, net.classes), np.float32)
    net.eval()
    return torch.softmax(net(to_tensor(clips)), dim=1).numpy().astype(np.float32)
