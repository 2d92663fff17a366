"""How a scored joint's disease is drawn: its joint space for a JSN grade, and the bone lost
from each surface for an erosion score (Sharp/van der Heijde).

A plan is made before the bones exist; :mod:`.anatomy` lays the bones around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .render import Defect, End


@dataclass
class JointPlan:
    """How one joint is to be drawn, before the bones exist."""

    gap: float
    form: str
    focal: float = 0.0
    lateral: float = 0.0
    proximal: float = 0.0
    bend: float = 0.0
    fused: bool = False
    head_collapse: float = 0.0
    base_collapse: float = 0.0
    head_defects: tuple[Defect, ...] = ()
    base_defects: tuple[Defect, ...] = ()
    surfaces: tuple[int, int] = (0, 0)
    osteopenia: float = 0.0
    swelling: float = 0.0


def plan_jsn(
    rng: np.random.Generator, jsn: int, kind: str, normal_gap: float, base_width: float
) -> JointPlan:
    """Joint space for a JSN grade (SvdH): 1 focal, 2 >50 % left, 3 <50 % or subluxed, 4 gone."""
    if jsn == 0:
        return JointPlan(gap=normal_gap * rng.uniform(0.92, 1.08), form="normal")
    if jsn == 1:
        # normal in the middle, narrowed towards one margin only
        gap = normal_gap * rng.uniform(0.88, 1.0)
        side = 1.0 if rng.random() < 0.5 else -1.0
        return JointPlan(gap=gap, form="focal", focal=side * gap * rng.uniform(0.55, 0.75))
    if jsn == 2:
        return JointPlan(gap=normal_gap * rng.uniform(0.56, 0.72), form="generalised")
    if jsn == 3:
        if rng.random() < 0.3:
            side = 1.0 if rng.random() < 0.5 else -1.0
            return JointPlan(
                gap=normal_gap * rng.uniform(0.2, 0.4),
                form="subluxation",
                lateral=side * base_width * rng.uniform(0.28, 0.42),
                bend=side * rng.uniform(4, 12),
            )
        return JointPlan(gap=normal_gap * rng.uniform(0.1, 0.4), form="generalised")
    ankylosis_share = 0.55 if kind != "MCP" else 0.3
    if rng.random() < ankylosis_share:
        return JointPlan(gap=0.0, form="ankylosis", fused=True)
    side = 1.0 if rng.random() < 0.5 else -1.0
    return JointPlan(
        gap=normal_gap,
        form="luxation",
        lateral=side * base_width * rng.uniform(0.9, 1.15),
        proximal=base_width * rng.uniform(0.25, 0.5),
        bend=side * rng.uniform(8, 20),
    )


def surface_defects(
    rng: np.random.Generator, score: int, width: float, at_head: bool, length: float, end: End
) -> tuple[tuple[Defect, ...], float]:
    """Erosions of one bone surface for its score (0, 1, 2, 3 or 5), and its collapse depth.

    1: one discrete marginal erosion; 2: larger, under half the surface; 3: past the middle of
    the bone; 5: the surface collapsed.
    """
    if score == 0:
        return (), 0.0
    half = 0.5 * width

    def at(v: float, back: float, ru: float, rv: float) -> Defect:
        into = float(end.depth_into_bone(np.array([v]), half)[0])
        u = length - into - back if at_head else into + back
        return Defect(u=u, v=v, ru=ru, rv=rv, depth=float(rng.uniform(0.7, 0.92)))

    side = 1.0 if rng.random() < 0.5 else -1.0

    def bite(v_from: float, v_to: float, size: float, back: float) -> list[Defect]:
        """An irregular bite of lost bone along the surface from ``v_from`` to ``v_to``."""
        count = max(int(abs(v_to - v_from) / (0.6 * size)) + 1, 1)
        return [
            at(
                float(v) + float(rng.normal(0, 0.08 * size)),
                back * float(rng.uniform(0.7, 1.3)),
                0.5 * size * float(rng.uniform(0.85, 1.15)),
                0.5 * size * float(rng.uniform(0.85, 1.15)),
            )
            for v in np.linspace(v_from, v_to, count)
        ]

    if score == 1:  # discrete: one small marginal erosion
        d = width * rng.uniform(0.17, 0.23)
        return tuple(bite(side * (half - 0.2 * d), side * (half - 0.2 * d), d, 0.3 * d)), 0.0
    if score == 2:  # larger, under half the surface
        if rng.random() < 0.5:
            d = width * rng.uniform(0.24, 0.3)
            return tuple(bite(side * (half - 0.2 * d), side * (half - 0.9 * d), d, 0.3 * d)), 0.0
        d = width * rng.uniform(0.2, 0.25)
        return tuple(
            bite(half - 0.2 * d, half - 0.2 * d, d, 0.3 * d)
            + bite(-(half - 0.2 * d), -(half - 0.2 * d), d, 0.3 * d)
        ), 0.0
    if score == 3:  # from the margin to beyond the middle of the bone
        d = width * rng.uniform(0.26, 0.32)
        reach = width * rng.uniform(0.08, 0.18)
        return tuple(bite(side * (half - 0.2 * d), -side * reach, d, 0.25 * d)), 0.0
    # 5: the joint surface has collapsed, with ragged remnants beneath it
    depth = width * rng.uniform(0.3, 0.42)
    d = width * 0.22
    v1 = float(rng.uniform(-0.5, 0.0)) * half
    return tuple(bite(v1, v1 + 0.6 * half, d, depth + 0.15 * d)), depth
