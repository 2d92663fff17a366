"""A CNN keypoint detector for the ten scored joints of a hand: one heat map per joint name.

The paper's Haar cascade sees a 20-pixel window and cannot tell a PIP joint from a DIP joint or
an MCP joint: identity then rests on the layout of what it found. A heat-map network sees the
whole hand at once (as the best RA2-DREAM teams' detectors did), so each output channel *is*
a joint name, and the scale of the hand comes from the joints themselves, not from a pixel
spacing that scanned films and exports often lack.

The image is letter-boxed to ``INPUT`` × ``INPUT`` and the heat maps come out at a quarter of
that. A joint name has one peak per hand, so two hands give two peaks in each channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..joints import JOINT_NAMES

INPUT = 320  #: side of the letter-boxed input, pixels
STRIDE = 4  #: input pixels per heat-map pixel
HEATMAP = INPUT // STRIDE
SIGMA = 1.5  #: of the Gaussian targets, heat-map pixels
#: a peak lower than this is no joint
PEAK_THRESHOLD = 0.25
_MIN_STD = 0.02


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class KeypointNet(nn.Module):
    """A small U-Net: five stride-2 stages down to 1/32 (the whole hand in view), back up to
    1/4 with skip connections, one heat-map channel per joint name."""

    def __init__(self, channels: int = len(JOINT_NAMES)) -> None:
        super().__init__()
        self.channels = channels
        self.stem = nn.Sequential(_block(1, 12, 2), _block(12, 12))  # 1/2
        self.down4 = nn.Sequential(_block(12, 24, 2), _block(24, 24))  # 1/4
        self.down8 = nn.Sequential(_block(24, 40, 2), _block(40, 40))  # 1/8
        self.down16 = nn.Sequential(_block(40, 64, 2), _block(64, 64))  # 1/16
        self.down32 = nn.Sequential(_block(64, 96, 2), _block(96, 96), _block(96, 96))  # 1/32
        self.up16 = _block(96 + 64, 64)
        self.up8 = _block(64 + 40, 40)
        self.up4 = _block(40 + 24, 32)
        self.head = nn.Conv2d(32, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s2 = self.stem(x)
        s4 = self.down4(s2)
        s8 = self.down8(s4)
        s16 = self.down16(s8)
        s32 = self.down32(s16)
        y = self.up16(torch.cat([F.interpolate(s32, scale_factor=2.0), s16], 1))
        y = self.up8(torch.cat([F.interpolate(y, scale_factor=2.0), s8], 1))
        y = self.up4(torch.cat([F.interpolate(y, scale_factor=2.0), s4], 1))
        out: torch.Tensor = self.head(y)
        return out


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the square input: input = original × scale + offset."""

    scale: float
    offset: tuple[float, float]

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.offset[0]) / self.scale, (y - self.offset[1]) / self.scale


def letterbox(grey: np.ndarray, side: int = INPUT) -> tuple[np.ndarray, Letterbox]:
    """The display grey-scale (float 0–1 or uint8) shrunk to fit ``side`` × ``side``, centred,
    padded with the image's median grey; uint8."""
    image = grey if grey.dtype == np.uint8 else np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8)
    rows, cols = image.shape
    scale = side / max(rows, cols)
    new_w, new_h = max(round(cols * scale), 1), max(round(rows * scale), 1)
    small = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    out = np.full((side, side), int(np.median(small)), np.uint8)
    ox, oy = (side - new_w) // 2, (side - new_h) // 2
    out[oy : oy + new_h, ox : ox + new_w] = small
    return out, Letterbox(scale, (float(ox), float(oy)))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W → float N×1×H×W, each image brought to zero mean and unit spread: scanned
    films, windowed CR and phantoms differ most in overall grey level and contrast."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)) / 255.0
    mean = x.mean(dim=(1, 2), keepdim=True)
    std = x.std(dim=(1, 2), keepdim=True).clamp_min(_MIN_STD)
    return ((x - mean) / std).unsqueeze(1)


def heatmap_targets(
    points: Sequence[Sequence[tuple[int, float, float]]], size: int = HEATMAP
) -> np.ndarray:
    """Gaussian targets, N×channels×size×size, from (channel, x, y) in input pixels per image;
    where two hands share a channel the maximum of both Gaussians is kept."""
    out = np.zeros((len(points), len(JOINT_NAMES), size, size), np.float32)
    grid = np.arange(size, dtype=np.float32)
    for n, image_points in enumerate(points):
        for channel, x, y in image_points:
            cx, cy = x / STRIDE - 0.5, y / STRIDE - 0.5
            gx = np.exp(-((grid - cx) ** 2) / (2 * SIGMA**2))
            gy = np.exp(-((grid - cy) ** 2) / (2 * SIGMA**2))
            np.maximum(out[n, channel], gy[:, None] * gx[None, :], out=out[n, channel])
    return out


@dataclass(frozen=True)
class Peak:
    """A heat-map maximum: joint name, position in original pixels, height (0–1)."""

    name: str
    x: float
    y: float
    score: float


def find_peaks(
    heatmaps: np.ndarray, box: Letterbox, per_channel: int = 2, threshold: float = PEAK_THRESHOLD
) -> list[Peak]:
    """The highest local maxima of each channel (channels × H × W), refined to sub-pixel by a
    Gaussian through each and its neighbours, in original-image pixels."""
    hm = torch.from_numpy(heatmaps)[None]
    local = (F.max_pool2d(hm, 5, stride=1, padding=2) == hm)[0].numpy()
    peaks: list[Peak] = []
    size_x = heatmaps.shape[2]
    for c, name in enumerate(JOINT_NAMES):
        values = np.where(local[c] & (heatmaps[c] >= threshold), heatmaps[c], 0.0)
        flat = np.argsort(values, axis=None)[::-1][:per_channel]
        for index in flat:
            score = float(values.flat[index])
            if score <= 0.0:
                break
            py, px = divmod(int(index), size_x)
            hx = px + _vertex(heatmaps[c, py, px - 1 : px + 2])
            hy = py + _vertex(heatmaps[c, py - 1 : py + 2, px])
            x, y = box.to_original((hx + 0.5) * STRIDE, (hy + 0.5) * STRIDE)
            peaks.append(Peak(name, x, y, min(score, 1.0)))
    return peaks


def _vertex(values: np.ndarray) -> float:
    """Offset (−0.5…0.5) of the top of the Gaussian through three samples around a maximum;
    0 at the border or where the samples do not curve down."""
    if len(values) != 3:
        return 0.0
    left, centre, right = np.log(np.clip(values.astype(np.float64), 1e-6, None))
    curvature = left - 2.0 * centre + right
    if curvature >= 0.0:
        return 0.0
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))


@torch.inference_mode()
def predict_heatmaps(net: KeypointNet, grey: np.ndarray) -> tuple[np.ndarray, Letterbox]:
    """Heat maps (channels × HEATMAP × HEATMAP) of one display grey-scale image."""
    net.eval()
    square, box = letterbox(grey)
    heat = net(to_tensor(square[None]))[0].numpy()
    return heat.astype(np.float32), box
