"""Joint detection with a Haar cascade (Viola–Jones, as in the paper) at a working resolution.

The radiograph is brought to a fixed millimetres-per-pixel scale before detection, so joints
have about the same size in pixels whatever the detector's pixel spacing and the cascade only
searches a narrow band of scales: far faster than searching a 3,000-pixel image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .identify import Detection

WORKING_SPACING_MM = 0.5  #: mm per pixel of the image the cascade sees
WINDOW = 20  #: the cascade's window, pixels
#: joint boxes span about 12–24 mm: 24–48 pixels at the working resolution
MIN_SIZE_MM, MAX_SIZE_MM = 9.0, 32.0
#: the working image's longest side, at most: 2 m at the working resolution, far beyond any
#: hand plate, so only a wrong pixel spacing reaches it (4 mm on 4,000² would ask for 32,000²)
MAX_WORKING_SIDE = 4000


def working_image(grey: np.ndarray, spacing_mm: float) -> tuple[np.ndarray, float]:
    """The display grey-scale (float 0–1) as uint8 at the working resolution, and the factor
    from working pixels to original pixels; never more than :data:`MAX_WORKING_SIDE` a side,
    whatever spacing it is given."""
    if not (np.isfinite(spacing_mm) and spacing_mm > 0):
        raise ValueError(f"pixel spacing must be a positive number of mm, got {spacing_mm}")
    factor = max(WORKING_SPACING_MM / spacing_mm, max(grey.shape[:2]) / MAX_WORKING_SIDE)
    small = cv2.resize(grey, None, fx=1.0 / factor, fy=1.0 / factor, interpolation=cv2.INTER_AREA)
    return np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8), factor


def non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3) -> list[int]:
    """Indices of the boxes (x, y, w, h) kept, best score first."""
    if len(boxes) == 0:
        return []
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    area = boxes[:, 2] * boxes[:, 3]
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = np.array(order, dtype=int)
        if not len(rest):
            break
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        overlap = inter / (area[i] + area[rest] - inter)
        # also drop boxes whose centre lies inside the kept box: one joint, two scales
        cx = x1[rest] + boxes[rest, 2] / 2
        cy = y1[rest] + boxes[rest, 3] / 2
        inside = (cx > x1[i]) & (cx < x2[i]) & (cy > y1[i]) & (cy < y2[i])
        order = [
            int(j) for j, o, c in zip(rest, overlap, inside, strict=True) if o <= iou and not c
        ]
    return keep


@dataclass
class CascadeDetector:
    """A trained cascade, used at the working resolution."""

    path: Path
    min_neighbors: int = 2
    scale_factor: float = 1.1

    def __post_init__(self) -> None:
        self._cascade = cv2.CascadeClassifier(str(self.path))
        if self._cascade.empty():
            raise ValueError(f"{self.path} is not a cascade OpenCV can load")

    def detect(self, small: np.ndarray, factor: float) -> list[Detection]:
        """Joint candidates in ``small`` (a working image) as boxes of the original image."""
        lo = int(MIN_SIZE_MM / WORKING_SPACING_MM)
        hi = int(MAX_SIZE_MM / WORKING_SPACING_MM)
        rects, _, weights = self._cascade.detectMultiScale3(
            small,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(lo, lo),
            maxSize=(hi, hi),
            outputRejectLevels=True,
        )
        if len(rects) == 0:
            return []
        boxes = np.asarray(rects, dtype=float).reshape(-1, 4)
        scores = np.asarray(weights, dtype=float).reshape(-1)
        return [
            Detection(tuple(float(v) * factor for v in boxes[i]), float(scores[i]))  # type: ignore[arg-type]
            for i in non_maximum_suppression(boxes, scores)
        ]

    def detect_near(
        self, small: np.ndarray, factor: float, centre: tuple[float, float], size: float
    ) -> Detection | None:
        """The most confident candidate near where a missing joint should be, searched with
        relaxed settings: the joint's place is known, so a weak response suffices."""
        cx, cy = centre[0] / factor, centre[1] / factor
        side = size / factor
        x0, y0 = max(int(cx - 1.5 * side), 0), max(int(cy - 1.5 * side), 0)
        x1 = min(int(cx + 1.5 * side), small.shape[1])
        y1 = min(int(cy + 1.5 * side), small.shape[0])
        if x1 - x0 < WINDOW or y1 - y0 < WINDOW:
            return None
        lo = max(WINDOW, int(0.6 * side))
        rects, _, weights = self._cascade.detectMultiScale3(
            small[y0:y1, x0:x1],
            scaleFactor=1.05,
            minNeighbors=0,
            minSize=(lo, lo),
            maxSize=(int(1.6 * side) + 1, int(1.6 * side) + 1),
            outputRejectLevels=True,
        )
        if len(rects) == 0:
            return None
        boxes = np.asarray(rects, dtype=float).reshape(-1, 4)
        scores = np.asarray(weights, dtype=float).reshape(-1)
        centres = boxes[:, :2] + boxes[:, 2:] / 2 + (x0, y0)
        near = np.hypot(centres[:, 0] - cx, centres[:, 1] - cy) < 0.6 * side
        if not near.any():
            return None
        i = int(np.flatnonzero(near)[np.argmax(scores[near])])
        x, y, w, h = boxes[i]
        return Detection(
            ((x + x0) * factor, (y + y0) * factor, w * factor, h * factor), float(scores[i])
        )
