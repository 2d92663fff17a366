"""Training of the scoring networks as in the paper: Adam, batch 512, softmax cross-entropy,
augmentation by horizontal flip and ±10° rotation, stopped at the minimum validation loss.

Clips come with context (the joint box is the middle 3/4 of each clip) so that rotation and the
small shifts and scalings that mimic detector boxes never reach past the clip's edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import nn

from ..cnn import INPUT_SIZE, JointNet, Task, build_net, to_tensor
from .stopping import BestEpoch

CONTEXT = 4.0 / 3.0  #: clip side / joint box side
CLIP_SIZE = 64  #: side of a clip with context; its middle 48 pixels are the box


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int = 60
    patience: int = 10  #: stop after this many epochs without a lower validation loss
    batch_size: int = 512
    learning_rate: float = 1e-3
    rotation_deg: float = 10.0
    jitter: float = 0.08  #: box shift, as a fraction of the box
    #: how much larger the joint may appear in its clip: the keypoint detector sizes a box
    #: from the hand, not from the joint itself, and its boxes run 0.75–1.1 × the truth's
    zoom: tuple[float, float] = (0.92, 1.35)
    seed: int = 0


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float


@dataclass
class TrainedNet:
    task: Task
    net: JointNet
    best_epoch: int
    history: list[EpochLog] = field(default_factory=list)


def augment(clips: np.ndarray, rng: np.random.Generator, config: TrainConfig) -> np.ndarray:
    """Random flip, rotation, shift and scale; returns the middle INPUT_SIZE × INPUT_SIZE."""
    out = np.empty((len(clips), INPUT_SIZE, INPUT_SIZE), np.uint8)
    centre = CLIP_SIZE / 2.0
    for i, clip in enumerate(clips):
        angle = rng.uniform(-config.rotation_deg, config.rotation_deg)
        scale = rng.uniform(*config.zoom)
        m = cv2.getRotationMatrix2D((centre, centre), angle, scale)
        shift = rng.uniform(-config.jitter, config.jitter, 2) * INPUT_SIZE
        m[:, 2] = m[:, 2] + shift - (CLIP_SIZE - INPUT_SIZE) / 2.0
        if rng.random() < 0.5:
            clip = clip[:, ::-1]
        out[i] = cv2.warpAffine(
            np.ascontiguousarray(clip),
            m,
            (INPUT_SIZE, INPUT_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return out


def centre(clips: np.ndarray) -> np.ndarray:
    """The joint box of clips with context: their middle INPUT_SIZE pixels."""
    lo = (clips.shape[1] - INPUT_SIZE) // 2
    return clips[:, lo : lo + INPUT_SIZE, lo : lo + INPUT_SIZE]


def _evaluate(net: JointNet, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    net.eval()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(x), 2048):
            logits = net(x[start : start + 2048])
            total += float(loss_fn(logits, y[start : start + 2048]))
            correct += int((logits.argmax(1) == y[start : start + 2048]).sum())
    return total / max(len(x), 1), correct / max(len(x), 1)


def train_net(
    task: Task,
    train_clips: np.ndarray,
    train_labels: np.ndarray,
    val_clips: np.ndarray,
    val_labels: np.ndarray,
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[EpochLog], None] | None = None,
    initial: JointNet | None = None,
) -> TrainedNet:
    """Train one network; keep the weights of the epoch with the lowest validation loss.
    ``initial``: a trained network to fine-tune (changed in place) instead of a new one."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = initial if initial is not None else build_net(task)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    y_train = torch.from_numpy(train_labels.astype(np.int64))
    x_val = to_tensor(centre(val_clips))
    y_val = torch.from_numpy(val_labels.astype(np.int64))
    best: BestEpoch[EpochLog] = BestEpoch(net, config.patience, on_epoch)
    for epoch in range(1, config.max_epochs + 1):
        net.train()
        order = rng.permutation(len(train_clips))
        seen, loss_sum, correct = 0, 0.0, 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            if len(idx) < 2:  # batch normalisation needs two samples
                continue
            x = to_tensor(augment(train_clips[idx], rng, config))
            y = y_train[idx]
            optimiser.zero_grad()
            logits = net(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimiser.step()
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        val_loss, val_accuracy = _evaluate(net, x_val, y_val)
        log = EpochLog(
            epoch, loss_sum / max(seen, 1), correct / max(seen, 1), val_loss, val_accuracy
        )
        if best.stop_after(epoch, log, val_loss):
            break
    best.restore()
    return TrainedNet(task, net, best.epoch, best.history)
