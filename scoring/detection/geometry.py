"""The mean hand placed on the joints found in one image: its scale, its handedness, and where
the joints not found should be.

The scale is what replaces a missing pixel spacing: joint boxes are sized from the hand itself
(the mean hand's joint sizes times the fitted millimetres-to-pixels scale), so a child's hand,
an adult's hand, a scanned film and a calibrated DX plate all give crops of the joint at the
scale the scoring networks learned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .identify import HandTemplate, _similarity_apply, _umeyama

#: fewer joints than this cannot fix a similarity transform reliably
MIN_JOINTS_TO_FIT = 3


@dataclass(frozen=True)
class PlacedHand:
    """The template placed on one hand: template mm → image pixels."""

    scale: float  #: pixels per template millimetre
    #: True when the hand looks mirrored relative to the template: with the fingers up, its
    #: thumb is on the image's left
    mirrored: bool
    placed: dict[str, tuple[float, float]]  #: every template joint's fitted position, pixels
    residual: dict[str, float]  #: found joint → distance from its fitted place, pixels

    def box_side(self, template: HandTemplate, name: str) -> float:
        return self.scale * template.joint_size_mm[name]

    def ray_length(self) -> float:
        """The mean MCPk–PIPk distance (k = 2…5) of the fitted hand, pixels: the hand's own
        unit of length (the landmark evaluation's tolerance is a quarter of it)."""
        lengths = [
            float(np.hypot(*np.subtract(self.placed[f"MCP{k}"], self.placed[f"PIP{k}"])))
            for k in range(2, 6)
        ]
        return float(np.mean(lengths))


def place_template(
    template: HandTemplate, found: Mapping[str, tuple[float, float]]
) -> PlacedHand | None:
    """Fit the mean hand, as it is and mirrored, to the found joints (name → pixels); the
    better fit wins. None when too few joints were found."""
    names = [n for n in template.names if n in found]
    if len(names) < MIN_JOINTS_TO_FIT:
        return None
    index = [template.names.index(n) for n in names]
    target = np.array([found[n] for n in names], dtype=float)
    best: PlacedHand | None = None
    best_cost = np.inf
    for mirrored in (False, True):
        src = template.points_mm.copy()
        if mirrored:
            src[:, 0] *= -1.0
        sim = _umeyama(src[index], target)
        fitted = _similarity_apply(sim, src)
        distances = np.linalg.norm(fitted[index] - target, axis=1)
        cost = float(np.mean(distances**2))
        if cost < best_cost:
            best_cost = cost
            best = PlacedHand(
                scale=float(sim[0]),
                mirrored=mirrored,
                placed={
                    n: (float(p[0]), float(p[1]))
                    for n, p in zip(template.names, fitted, strict=True)
                },
                residual={n: float(d) for n, d in zip(names, distances, strict=True)},
            )
    return best
