"""The hands' soft tissue as a thickness map (mm): fingers, palm, wrist and swellings.

The outline is drawn from the hand's strokes, polygons and blobs (:class:`~.hand.Hand`); the
thickness grows inwards from the skin, so a finger is roughly a cylinder. :class:`~.render.Canvas`
adds it to the bones' attenuation.
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np


def soft_tissue_thickness(
    rows: int,
    columns: int,
    spacing_mm: float,
    strokes: list[tuple[np.ndarray, float]],
    polygons: list[np.ndarray],
    blobs: list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]],
    scale: int = 4,
    depth_mm: float = 7.5,
    round_mm: float = 0.0,
) -> np.ndarray:
    """Soft-tissue thickness (mm) of the hands: fingers, palm, wrist and swellings.

    Drawn as a mask at 1/``scale`` resolution, turned into a rounded thickness by its distance
    transform (a finger is roughly a cylinder), then brought back to full size.
    strokes: (points N×2 mm, half-width mm); polygons: N×2 mm; blobs: (centre, (half-length,
    half-width), direction of the length). ``depth_mm``: how far in from the skin the tissue
    keeps thickening (half the thickest tissue: 7.5 mm gives a 15 mm palm); ``round_mm``
    rounds the outline's corners (web spaces, the palm polygon) over about that distance.
    """
    s = spacing_mm * scale
    h, w = (rows + scale - 1) // scale, (columns + scale - 1) // scale
    mask = np.zeros((h, w), np.uint8)
    for points, half in strokes:
        px = np.round(points / s).astype(np.int32)
        thick = max(round(2 * half / s), 1)
        for p, q in itertools.pairwise(px):
            cv2.line(mask, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 255, thick, cv2.LINE_AA)
        end = px[-1]
        cv2.circle(mask, (int(end[0]), int(end[1])), thick // 2, 255, -1, cv2.LINE_AA)
    for poly in polygons:
        cv2.fillPoly(mask, [np.round(poly / s).astype(np.int32)], 255, cv2.LINE_AA)
    for centre, axes, direction in blobs:
        angle = float(np.degrees(np.arctan2(direction[1], direction[0])))
        cv2.ellipse(
            mask,
            (round(centre[0] / s), round(centre[1] / s)),
            (max(round(axes[0] / s), 1), max(round(axes[1] / s), 1)),
            angle,
            0,
            360,
            255,
            -1,
            cv2.LINE_AA,
        )
    # round the outline's corners (the palm is drawn as a polygon)
    rounded = cv2.GaussianBlur(mask, (0, 0), round_mm / s) if round_mm > 0 else mask
    binary = (rounded > 127).astype(np.uint8)
    dist = cv2.distanceTransform(binary, cv2.DIST_L2, 5) * s  # mm to the skin
    r0 = depth_mm
    d = np.minimum(dist, r0)
    thickness = 2.0 * np.sqrt(np.maximum(r0 * r0 - (r0 - d) ** 2, 0.0))
    thickness = cv2.GaussianBlur(thickness, (0, 0), 0.7)
    full = cv2.resize(thickness, (columns, rows), interpolation=cv2.INTER_LINEAR)
    return np.asarray(full, dtype=np.float32)
