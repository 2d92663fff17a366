"""The grey image the overlay is drawn on: the display grey-scale, 8-bit, long side capped.

The overlay is for seeing where the joints are and what they were graded, on any viewer; the
GSPS carries the boxes at full resolution on the original. So the SC is drawn once on a copy no
longer than :data:`OVERLAY_LONG_SIDE` a side, which the scoring worker keeps next to the job
(so building the results never decodes the source again) and which a decode of the source
makes the same way, so that both give the same SC.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Long side of the overlay, pixels. A hand plate (24 × 30 cm) comes out at about 0.25 mm a
#: pixel: twice as fine as the 0.5 mm the joint detector works at, each joint box 50–100
#: pixels, and about the size a viewer shows a whole radiograph on a screen, so its labels
#: are shown near 1:1 (capitals about 12 px) rather than shrunk from a 2,500-pixel image.
OVERLAY_LONG_SIDE = 1280


def overlay_shape(rows: int, columns: int) -> tuple[int, int]:
    """(rows, columns) of the overlay of an image ``rows`` × ``columns``: never enlarged."""
    scale = min(1.0, OVERLAY_LONG_SIDE / max(rows, columns, 1))
    return max(1, round(rows * scale)), max(1, round(columns * scale))


def overlay_grey(pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (display grey-scale: float in [0, 1], or uint8) as a contiguous uint8 image of
    :func:`overlay_shape`; area averaging, as the scorer shrinks its images."""
    rows, columns = pixels.shape[:2]
    shape = overlay_shape(rows, columns)
    if shape != (rows, columns):
        src = pixels if pixels.dtype == np.uint8 else pixels.astype(np.float32, copy=False)
        pixels = cv2.resize(src, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    if pixels.dtype != np.uint8:
        pixels = np.rint(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(pixels)
