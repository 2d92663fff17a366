"""Training the keypoint detector on phantoms and real landmarked hands together.

Every batch is drawn afresh through a random similarity transform (scale, rotation, shift,
mirror), a random grey-level curve, noise and blur, and sometimes a collimation edge that cuts
part of the hand away: real radiographs come mirrored, tilted, cut off and windowed every way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from ..detection.keypoints import HEATMAP, INPUT, KeypointNet, heatmap_targets, to_tensor
from .stopping import BestEpoch

#: long side of the images kept for training: a little above INPUT, for zoomed-in draws
STORE_SIDE = 400


@dataclass(frozen=True)
class KeypointSample:
    """One training image (uint8, long side STORE_SIDE) and its joints (channel, x, y)."""

    image: np.ndarray
    points: tuple[tuple[int, float, float], ...]
    source: str  #: "phantom" or "real"


@dataclass(frozen=True)
class KeypointConfig:
    max_epochs: int = 40
    patience: int = 6
    batch_size: int = 16
    learning_rate: float = 2e-3
    rotation_deg: float = 25.0
    zoom: tuple[float, float] = (0.75, 1.2)
    shift: float = 0.08  #: of the input side
    collimation: float = 0.25  #: chance of a cut-off edge
    #: the loss weight of a target pixel grows with its target value: joints are a tiny part
    #: of each map, and an all-zero answer must not be cheap
    positive_weight: float = 20.0
    seed: int = 0


@dataclass(frozen=True)
class KeypointEpoch:
    epoch: int
    train_loss: float
    val_loss: float


@dataclass
class TrainedKeypoints:
    net: KeypointNet
    best_epoch: int
    history: list[KeypointEpoch] = field(default_factory=list)


def shrink(
    grey: np.ndarray, points: Sequence[tuple[int, float, float]], source: str
) -> KeypointSample:
    """A display grey-scale (float 0–1) and its joints, shrunk to the stored training size."""
    scale = STORE_SIDE / max(grey.shape)
    image = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    image8 = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return KeypointSample(image8, tuple((c, x * scale, y * scale) for c, x, y in points), source)


def _draw(
    sample: KeypointSample, rng: np.random.Generator, config: KeypointConfig, augment: bool
) -> tuple[np.ndarray, list[tuple[int, float, float]]]:
    """One input square and its joints after a random (or, unaugmented, the plain
    letter-box) transform."""
    rows, cols = sample.image.shape
    fit = INPUT / max(rows, cols)
    centre = np.array([cols / 2.0, rows / 2.0])
    angle, zoom, shift, mirror = 0.0, 1.0, np.zeros(2), False
    if augment:
        angle = rng.uniform(-config.rotation_deg, config.rotation_deg)
        zoom = rng.uniform(*config.zoom)
        shift = rng.uniform(-config.shift, config.shift, 2) * INPUT
        mirror = bool(rng.random() < 0.5)
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, fit * zoom)
    m[:, 2] = m[:, 2] + (INPUT / 2.0 - centre + shift)
    if mirror:
        m[0] = -m[0]
        m[0, 2] += INPUT
    fill = int(np.median(sample.image))
    square = cv2.warpAffine(
        sample.image, m, (INPUT, INPUT), flags=cv2.INTER_LINEAR, borderValue=fill
    )
    points = []
    for channel, x, y in sample.points:
        px, py = m @ np.array([x, y, 1.0])
        points.append((channel, float(px), float(py)))
    if augment:
        square = _grey_levels(square, rng)
        if rng.random() < config.collimation:
            square, points = _collimate(square, points, rng)
    inside = [(c, x, y) for c, x, y in points if 0 <= x < INPUT and 0 <= y < INPUT]
    return square, inside


def _grey_levels(square: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random gamma, contrast, noise and blur: films, phosphor plates and phantoms differ."""
    x = square.astype(np.float32) / 255.0
    x = np.power(np.clip(x, 0.0, 1.0), math.exp(rng.uniform(-0.5, 0.5)))
    x = (x - 0.5) * rng.uniform(0.6, 1.4) + 0.5 + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    x = x + rng.normal(0.0, rng.uniform(0.0, 0.04), x.shape).astype(np.float32)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _collimate(
    square: np.ndarray, points: list[tuple[int, float, float]], rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, float, float]]]:
    """Blank one side of the image from a random line: the joints beyond it are not imaged."""
    side = int(rng.integers(4))
    cut = int(rng.uniform(0.15, 0.45) * INPUT)
    out = square.copy()
    value = int(rng.choice([0, 255, int(np.median(square))]))
    keep = []
    for c, x, y in points:
        pos = (x, INPUT - x, y, INPUT - y)[side]
        if pos >= cut:
            keep.append((c, x, y))
    if side == 0:
        out[:, :cut] = value
    elif side == 1:
        out[:, INPUT - cut :] = value
    elif side == 2:
        out[:cut] = value
    else:
        out[INPUT - cut :] = value
    return out, keep


def _batch(
    samples: Sequence[KeypointSample],
    rng: np.random.Generator,
    config: KeypointConfig,
    augment: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    drawn = [_draw(s, rng, config, augment) for s in samples]
    x = to_tensor(np.stack([d[0] for d in drawn]))
    y = torch.from_numpy(heatmap_targets([d[1] for d in drawn], HEATMAP))
    return x, y


def _loss(out: torch.Tensor, target: torch.Tensor, config: KeypointConfig) -> torch.Tensor:
    weight = 1.0 + config.positive_weight * target
    return (weight * (out - target) ** 2).mean()


def train_keypoints(
    train: Sequence[KeypointSample],
    val: Sequence[KeypointSample],
    config: KeypointConfig = KeypointConfig(),
    on_epoch: Callable[[KeypointEpoch], None] | None = None,
) -> TrainedKeypoints:
    """Train the detector; keep the weights of the epoch with the lowest validation loss
    (validation images unaugmented, as the detector will see them)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = KeypointNet()
    steps = config.max_epochs * math.ceil(len(train) / config.batch_size)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=max(steps, 1)
    )
    val_x, val_y = _batch(val, rng, config, augment=False)
    best: BestEpoch[KeypointEpoch] = BestEpoch(net, config.patience, on_epoch)
    for epoch in range(1, config.max_epochs + 1):
        net.train()
        order = rng.permutation(len(train))
        total, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            if len(idx) < 2:
                continue
            x, y = _batch([train[i] for i in idx], rng, config, augment=True)
            optimiser.zero_grad()
            loss = _loss(net(x), y, config)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        net.eval()
        with torch.inference_mode():
            val_loss = sum(
                float(_loss(net(val_x[i : i + 32]), val_y[i : i + 32], config))
                * len(val_x[i : i + 32])
                for i in range(0, len(val_x), 32)
            ) / max(len(val_x), 1)
        log = KeypointEpoch(epoch, total / max(seen, 1), val_loss)
        if best.stop_after(epoch, log, val_loss):
            break
    best.restore()
    return TrainedKeypoints(net, best.epoch, best.history)
