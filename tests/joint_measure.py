"""Measurements of phantom pictures, to show that they carry their labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import map_coordinates

from scoring.phantom import JointTruth, PhantomImage


def grey(image: PhantomImage) -> np.ndarray:
    """Stored values as float with bone bright (MONOCHROME1 inverted)."""
    values = image.pixels.astype(np.float32)
    if image.acquisition.photometric == "MONOCHROME1":
        values = float((1 << image.acquisition.bits_stored) - 1) - values
    return values


@dataclass(frozen=True)
class JointSpace:
    width_mm: float  #: median width of the dark band across the joint
    depth: float  #: how far the band falls from the bone either side, relative to the bone


def joint_space(values: np.ndarray, joint: JointTruth, spacing: float) -> JointSpace:
    """Profiles along the finger through the joint, at offsets across its middle half."""
    ax, ay = joint.axis
    nx, ny = -ay, ax
    width_px = joint.width_mm / spacing
    step = 0.25
    s = np.arange(-0.6 * width_px, 0.6 * width_px, step)
    widths, depths = [], []
    for t in np.linspace(-0.25 * width_px, 0.25 * width_px, 9):
        x = joint.center[0] + s * ax + t * nx
        y = joint.center[1] + s * ay + t * ny
        profile = map_coordinates(values, [y, x], order=1, mode="nearest")
        middle = np.abs(s) < 0.3 * width_px
        i_min = int(np.flatnonzero(middle)[np.argmin(profile[middle])])
        reach = int(0.35 * width_px / step)
        left = profile[max(i_min - reach, 0) : i_min + 1].max()
        right = profile[i_min : i_min + reach + 1].max()
        bone = min(left, right)
        low = profile[i_min]
        half = 0.5 * (bone + low)
        below = profile < half
        lo = hi = i_min
        while lo > 0 and below[lo - 1]:
            lo -= 1
        while hi < len(profile) - 1 and below[hi + 1]:
            hi += 1
        widths.append((hi - lo + 1) * step * spacing)
        depths.append((bone - low) / max(bone, 1e-6))
    return JointSpace(float(np.median(widths)), float(np.median(depths)))
