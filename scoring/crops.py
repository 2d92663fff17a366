"""Clipped joint images for training, as in the paper (clips resized to 48×48 grey-scale)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

DEFAULT_SIZE = 48


def crop_joint(
    grey: np.ndarray, box: Sequence[float], size: int = DEFAULT_SIZE, context: float = 1.0
) -> np.ndarray:
    """The square around ``box`` (x, y, w, h) of a display-ready grey-scale image (float in
    [0, 1]), ``context`` times the box's larger side, padded by edge replication where it leaves
    the image, resized to ``size`` × ``size`` uint8."""
    x, y, w, h = (float(v) for v in box)
    side = max(round(max(w, h) * context), 1)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    rows, cols = grey.shape
    if 0 <= x0 <= cols - side and 0 <= y0 <= rows - side:
        clip = grey[y0 : y0 + side, x0 : x0 + side]
    else:  # edge replication by clamped indices: only the clip is built, not a padded image
        r = np.clip(np.arange(y0, y0 + side), 0, rows - 1)
        c = np.clip(np.arange(x0, x0 + side), 0, cols - 1)
        clip = grey[np.ix_(r, c)]
    clip8 = np.clip(clip * 255.0 + 0.5, 0, 255).astype(np.uint8)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(clip8, (size, size), interpolation=interpolation))
