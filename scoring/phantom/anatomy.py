"""A hand's skeleton and soft tissue, with each scored joint's disease drawn into its bones.

The hand is built in its own frame — x towards the thumb, y towards the fingertips, mm, origin
at the centre of the distal radius — as a chain per ray: metacarpal → proximal → middle →
distal phalanx. A joint places the distal bone around the head of the proximal one: the head is
a circle of radius ρ, the base a concentric cup of radius ρ + gap, so the joint space stays
even when the finger bends. JSN narrows it at one margin (focal) or all across, shifts it
(subluxation), closes it with a bony
bridge (ankylosis) or dislocates (luxation) that arrangement; erosions cut defects into the
bone ends. A :class:`Pose` then mirrors, turns and moves the hand into the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .disease import JointScore, split_erosion
from .model import Side
from .render import Defect, EllipsoidBone, End, TubeBone

#: DESIGN.md, anatomy table: lengths (mm) of metacarpal, proximal, middle, distal phalanx.
LENGTHS: dict[int, tuple[float, float, float, float]] = {
    1: (45, 32, 0, 23),
    2: (68, 40, 23, 17),
    3: (65, 45, 27, 19),
    4: (58, 42, 26, 19),
    5: (54, 33, 19, 17),
}
#: Widths (mm) as (base, shaft, head) per bone kind, before the ray's own factor.
WIDTHS: dict[str, tuple[float, float, float]] = {
    "MC": (11.0, 8.6, 11.8),
    "PP": (10.2, 7.4, 8.6),
    "MP": (8.4, 6.2, 7.2),
    "DP": (7.2, 4.4, 5.8),
    "MC1": (13.0, 9.2, 12.6),
    "PP1": (11.4, 8.2, 9.8),
    "DP1": (9.4, 6.0, 7.8),
}
_RAY_WIDTH = {1: 1.0, 2: 1.0, 3: 1.02, 4: 0.92, 5: 0.86}
_CORTEX = {"MC": 1.7, "PP": 1.35, "MP": 1.1, "DP": 0.8, "MC1": 1.8, "PP1": 1.4, "DP1": 0.9}
#: Metacarpal bases (x, y) and directions (degrees from the hand's axis towards the thumb).
_MC_BASE = {1: (21.0, 16.0), 2: (12.0, 27.5), 3: (2.5, 27.0), 4: (-7.0, 28.0), 5: (-15.5, 29.5)}
_MC_ANGLE = {1: 38.0, 2: 5.0, 3: 0.0, 4: -5.0, 5: -11.0}
_SPREAD = {1: -12.0, 2: 5.0, 3: 0.0, 4: -4.0, 5: -9.0}
#: Normal joint-space width (mm) and head radius (as a multiple of the head's width).
_GAP = {"MCP": 1.75, "MCP1": 1.45, "PIP": 1.05, "IP": 1.0, "DIP": 0.8}
_HEAD_RADIUS = {"MCP": 0.62, "MCP1": 0.72, "PIP": 0.9, "IP": 0.85, "DIP": 0.9}

_CARPALS: tuple[tuple[str, float, float, float, float, float], ...] = (
    # name, x, y, a, b, angle (degrees of a from the x axis)
    ("scaphoid", 14.0, 8.0, 9.0, 5.4, 55.0),
    ("lunate", 1.5, 8.0, 6.8, 6.0, 10.0),
    ("triquetrum", -11.0, 11.0, 6.0, 5.0, -20.0),
    ("pisiform", -13.5, 8.5, 4.6, 4.3, 0.0),
    ("trapezium", 19.5, 19.5, 6.6, 5.6, 40.0),
    ("trapezoid", 11.5, 21.5, 5.4, 5.0, 80.0),
    ("capitate", 2.0, 18.5, 5.8, 8.6, 90.0),
    ("hamate", -9.0, 20.5, 6.4, 7.2, 75.0),
)


@dataclass(frozen=True)
class Pose:
    """Hand frame → image frame (mm): optional mirror, rotation, translation.

    The image frame has y downwards, so a hand with fingers up is already a reflection of the
    hand frame; ``parity`` says whether the whole map keeps (+1) or flips (-1) handedness, which
    decides on which side of a bone "v > 0" lands.
    """

    mirror: bool  #: mirror x (thumb towards image -x)
    angle_deg: float  #: rotation, positive = counter-clockwise on screen
    offset: tuple[float, float]  #: image position (mm) of the hand frame's origin

    @property
    def matrix(self) -> np.ndarray:
        flip = np.array([[-1.0 if self.mirror else 1.0, 0.0], [0.0, -1.0]])
        t = math.radians(self.angle_deg)
        rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
        return rot @ flip

    @property
    def parity(self) -> int:
        return 1 if np.linalg.det(self.matrix) > 0 else -1

    def point(self, p: tuple[float, float] | np.ndarray) -> tuple[float, float]:
        q = self.matrix @ np.asarray(p, dtype=float) + np.asarray(self.offset)
        return float(q[0]), float(q[1])

    def vector(self, d: tuple[float, float]) -> tuple[float, float]:
        q = self.matrix @ np.asarray(d, dtype=float)
        return float(q[0]), float(q[1])


@dataclass(frozen=True)
class JointGeometry:
    """A scored joint in the hand frame, mm, with everything its truth record needs."""

    name: str
    center: tuple[float, float]
    axis: tuple[float, float]  #: distal bone's axis
    half_extent: float  #: half the side of the joint's square box
    score: JointScore
    form: str
    surfaces: tuple[int, int]
    gap: float
    normal_gap: float
    width: float
    osteopenia: float
    swelling: float


@dataclass
class Hand:
    """Everything drawn for one hand, in the hand frame until :meth:`posed`."""

    side: Side
    tubes: list[TubeBone]
    carpals: list[EllipsoidBone]
    joints: list[JointGeometry]
    strokes: list[tuple[np.ndarray, float]]  #: soft tissue: (points, half-width)
    polygons: list[np.ndarray]
    #: swellings: (centre, (half-length along the finger, half-width across), finger axis)
    blobs: list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]]

    def extent(self, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
        """Image-frame corners of the posed hand, leaving out the forearm below the wrist."""
        pts = [p for stroke, _ in self.strokes for p in stroke]
        pts += [p for poly in self.polygons for p in poly if p[1] > -40]
        arr = np.asarray(pts) @ pose.matrix.T + np.asarray(pose.offset)
        return arr.min(axis=0), arr.max(axis=0)

    def posed(self, pose: Pose) -> Hand:
        """The same hand in the image frame."""
        sign = pose.parity

        def end(e: End) -> End:
            return replace(e, tilt=e.tilt * sign, focal=e.focal * sign)

        tubes = [
            replace(
                t,
                origin=pose.point(t.origin),
                axis=pose.vector(t.axis),
                base=end(t.base),
                head=end(t.head),
                defects=tuple(replace(d, v=d.v * sign) for d in t.defects),
            )
            for t in self.tubes
        ]
        carpals = [
            replace(c, center=pose.point(c.center), axis=pose.vector(c.axis)) for c in self.carpals
        ]
        joints = [
            replace(j, center=pose.point(j.center), axis=pose.vector(j.axis)) for j in self.joints
        ]
        m, off = pose.matrix, np.asarray(pose.offset)
        strokes = [(pts @ m.T + off, half) for pts, half in self.strokes]
        polygons = [poly @ m.T + off for poly in self.polygons]
        blobs = [(pose.point(c), axes, pose.vector(d)) for c, axes, d in self.blobs]
        return Hand(self.side, tubes, carpals, joints, strokes, polygons, blobs)


@dataclass(frozen=True)
class PatientAnatomy:
    """Per-patient proportions, shared by both hands (each hand adds a little of its own)."""

    scale: float
    width_scale: float
    lengths: dict[int, tuple[float, float, float, float]]
    density: float
    gap_scale: float

    @classmethod
    def sample(cls, rng: np.random.Generator, sex: str) -> PatientAnatomy:
        scale = float(np.clip(rng.normal(1.05 if sex == "M" else 0.95, 0.05), 0.82, 1.18))
        lengths = {
            ray: tuple(float(x * rng.normal(1.0, 0.03)) for x in values)
            for ray, values in LENGTHS.items()
        }
        return cls(
            scale=scale,
            width_scale=float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.12)),
            lengths=lengths,  # type: ignore[arg-type]
            density=float(np.clip(rng.normal(1.0, 0.08), 0.78, 1.2)),
            gap_scale=float(np.clip(rng.normal(1.0, 0.08), 0.8, 1.2)),
        )


def _unit(deg: float) -> tuple[float, float]:
    """Direction ``deg`` degrees from +y towards +x."""
    t = math.radians(deg)
    return math.sin(t), math.cos(t)


def _rot90(a: tuple[float, float]) -> tuple[float, float]:
    """The bone frame's +v direction for axis ``a`` (matches render.Canvas)."""
    return -a[1], a[0]


@dataclass
class _JointPlan:
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


def _plan_jsn(
    rng: np.random.Generator, jsn: int, kind: str, normal_gap: float, base_width: float
) -> _JointPlan:
    """Joint space for a JSN grade (SvdH): 1 focal, 2 >50 % left, 3 <50 % or subluxed, 4 gone."""
    if jsn == 0:
        return _JointPlan(gap=normal_gap * rng.uniform(0.92, 1.08), form="normal")
    if jsn == 1:
        # normal in the middle, narrowed towards one margin only
        gap = normal_gap * rng.uniform(0.88, 1.0)
        side = 1.0 if rng.random() < 0.5 else -1.0
        return _JointPlan(gap=gap, form="focal", focal=side * gap * rng.uniform(0.55, 0.75))
    if jsn == 2:
        return _JointPlan(gap=normal_gap * rng.uniform(0.56, 0.72), form="generalised")
    if jsn == 3:
        if rng.random() < 0.3:
            side = 1.0 if rng.random() < 0.5 else -1.0
            return _JointPlan(
                gap=normal_gap * rng.uniform(0.2, 0.4),
                form="subluxation",
                lateral=side * base_width * rng.uniform(0.28, 0.42),
                bend=side * rng.uniform(4, 12),
            )
        return _JointPlan(gap=normal_gap * rng.uniform(0.1, 0.4), form="generalised")
    ankylosis_share = 0.55 if kind != "MCP" else 0.3
    if rng.random() < ankylosis_share:
        return _JointPlan(gap=0.0, form="ankylosis", fused=True)
    side = 1.0 if rng.random() < 0.5 else -1.0
    return _JointPlan(
        gap=normal_gap,
        form="luxation",
        lateral=side * base_width * rng.uniform(0.9, 1.15),
        proximal=base_width * rng.uniform(0.25, 0.5),
        bend=side * rng.uniform(8, 20),
    )


def _surface_defects(
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


def build_hand(
    rng: np.random.Generator,
    side: Side,
    anatomy: PatientAnatomy,
    scores: dict[str, JointScore],
    severity: float,
) -> Hand:
    """One hand, in the hand frame, with the disease of ``scores`` drawn into it."""
    sc, ws = anatomy.scale, anatomy.width_scale * anatomy.scale
    tubes: list[TubeBone] = []
    joints: list[JointGeometry] = []
    strokes: list[tuple[np.ndarray, float]] = []
    blobs: list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = []
    hand_spread = rng.uniform(0.6, 1.3)
    swell_p = 1 / (1 + math.exp(-(severity - 0.5) * 1.5)) * 0.5

    def widths(kind: str, ray: int) -> tuple[float, float, float]:
        f = _RAY_WIDTH[ray] * ws * rng.normal(1.0, 0.025)
        b, s, h = WIDTHS[kind]
        return b * f, s * f, h * f

    for ray in (1, 2, 3, 4, 5):
        lengths = anatomy.lengths[ray]
        thumb = ray == 1
        kinds = ("MC1", "PP1", "DP1") if thumb else ("MC", "PP", "MP", "DP")
        bone_lengths = [lengths[0], lengths[1], lengths[3]] if thumb else list(lengths)
        joint_kinds = ("MCP1", "IP") if thumb else ("MCP", "PIP", "DIP")
        joint_names: tuple[str | None, ...] = (
            ("MCP1", "IP") if thumb else (f"MCP{ray}", f"PIP{ray}", None)
        )

        bx, by = _MC_BASE[ray]
        origin = (bx * sc + rng.normal(0, 0.6), by * sc + rng.normal(0, 0.6))
        angle = _MC_ANGLE[ray] + rng.normal(0, 2.0) + (rng.normal(0, 4) if thumb else 0.0)
        axis = _unit(angle)
        w_prev = widths(kinds[0], ray)
        length = bone_lengths[0] * sc
        base_end = End("flat", plate=False)
        bone_defects: tuple[Defect, ...] = ()
        base_osteo = 0.0
        finger_points = [np.array(origin)]

        for k in range(1, len(kinds)):
            kind_name = joint_kinds[k - 1]
            jname = joint_names[k - 1]
            jtype = "MCP" if kind_name.startswith("MCP") else kind_name
            w_next = widths(kinds[k], ray)
            normal_gap = _GAP[kind_name] * sc * anatomy.gap_scale
            rho = _HEAD_RADIUS[kind_name] * w_prev[2]
            if jname is not None:
                score = scores[jname]
                plan = _plan_jsn(rng, score.jsn, jtype, normal_gap, w_next[0])
                plan.surfaces = split_erosion(rng, score.erosion)
                if rng.random() < 0.25 + 0.5 * swell_p:
                    plan.osteopenia = float(
                        np.clip(rng.normal(0.2 + 0.12 * severity, 0.1), 0, 0.55)
                    )
                if rng.random() < swell_p:
                    plan.swelling = float(rng.uniform(1.5, 4.0)) * sc
            else:
                plan = _JointPlan(gap=normal_gap * rng.uniform(0.9, 1.1), form="normal")

            fused = plan.fused
            head_end = End("convex", radius=rho, plate=not fused, fade=not fused)
            head_defects, head_collapse = _surface_defects(
                rng, plan.surfaces[0], w_prev[2], True, length, head_end
            )
            if head_collapse:
                head_end = replace(
                    head_end,
                    collapse=head_collapse,
                    plate=False,
                    phases=tuple(float(x) for x in rng.uniform(0, 2 * math.pi, 4)),
                )
            tubes.append(
                TubeBone(
                    name=f"{side}_{kinds[k - 1]}{'' if thumb else ray}",
                    origin=origin,
                    axis=axis,
                    length=length,
                    width_base=w_prev[0],
                    width_shaft=w_prev[1],
                    width_head=w_prev[2],
                    cortex=_CORTEX[kinds[k - 1]] * ws,
                    base=base_end,
                    head=head_end,
                    density=anatomy.density,
                    osteopenia_base=base_osteo,
                    osteopenia_head=plan.osteopenia,
                    defects=bone_defects + head_defects,
                )
            )

            # Where the distal bone goes.
            apex = (origin[0] + length * axis[0], origin[1] + length * axis[1])
            centre = (apex[0] - rho * axis[0], apex[1] - rho * axis[1])
            spread = _SPREAD[ray] * hand_spread if k == 1 else rng.normal(0, 2.0)
            next_angle = angle + spread + rng.normal(0, 2.5) + plan.bend
            next_axis = _unit(next_angle)
            n = _rot90(next_axis)
            cup = rho + (plan.gap if not fused else 0.0)
            base_end = End("concave", radius=cup, focal=plan.focal, plate=not fused, fade=not fused)
            base_defects, base_collapse = _surface_defects(
                rng, plan.surfaces[1], w_next[0], False, 0.0, base_end
            )
            if base_collapse:
                base_end = replace(
                    base_end,
                    collapse=base_collapse,
                    plate=False,
                    phases=tuple(float(x) for x in rng.uniform(0, 2 * math.pi, 4)),
                )
            along = cup - head_collapse - base_collapse - plan.proximal
            next_origin = (
                centre[0] + along * next_axis[0] + plan.lateral * n[0],
                centre[1] + along * next_axis[1] + plan.lateral * n[1],
            )
            if jname is not None:
                head_surface = (
                    apex[0] - head_collapse * axis[0],
                    apex[1] - head_collapse * axis[1],
                )
                base_surface = (
                    next_origin[0] + base_collapse * next_axis[0],
                    next_origin[1] + base_collapse * next_axis[1],
                )
                mid = (
                    0.5 * (head_surface[0] + base_surface[0]),
                    0.5 * (head_surface[1] + base_surface[1]),
                )
                spread_ends = math.dist(head_surface, base_surface)
                half = 0.8 * max(w_prev[2], w_next[0]) + 0.5 * spread_ends
                joints.append(
                    JointGeometry(
                        name=jname,
                        center=mid,
                        axis=next_axis,
                        half_extent=half,
                        score=scores[jname],
                        form=plan.form,
                        surfaces=plan.surfaces,
                        gap=plan.gap,
                        normal_gap=normal_gap,
                        width=w_prev[2],
                        osteopenia=plan.osteopenia,
                        swelling=plan.swelling,
                    )
                )
                if plan.swelling > 0:
                    along_axis = 0.9 * w_prev[2] + 2.0
                    across = 0.5 * w_prev[2] + 2.5 * sc + plan.swelling
                    blobs.append((mid, (along_axis, across), next_axis))
            finger_points.append(np.array(apex))
            # flexion foreshortens the phalanx in a PA projection
            length = bone_lengths[k] * sc * math.cos(math.radians(rng.uniform(0, 22)))
            origin, axis, angle = next_origin, next_axis, next_angle
            w_prev = w_next
            bone_defects = base_defects
            base_osteo = plan.osteopenia

        tip_end = End("tuft", plate=False)
        tubes.append(
            TubeBone(
                name=f"{side}_{kinds[-1]}{'' if thumb else ray}",
                origin=origin,
                axis=axis,
                length=length,
                width_base=w_prev[0],
                width_shaft=w_prev[1],
                width_head=w_prev[2],
                cortex=_CORTEX[kinds[-1]] * ws,
                base=base_end,
                head=tip_end,
                density=anatomy.density,
                osteopenia_base=base_osteo,
                defects=bone_defects,
            )
        )
        tip = (origin[0] + (length + 3.0) * axis[0], origin[1] + (length + 3.0) * axis[1])
        finger_points.append(np.array(tip))
        pts = np.array(finger_points)
        # soft tissue of the finger, segment by segment (palm covers the metacarpals)
        pad = 2.8 * sc
        seg_width = [WIDTHS[k][0] * _RAY_WIDTH[ray] * ws for k in kinds]
        for i in range(1, len(pts) - 1):
            strokes.append(
                (pts[i : i + 2], 0.5 * seg_width[i] + pad + (4.0 if thumb else 0.0) * (i == 1))
            )
        if thumb:
            strokes.append((pts[0:2], 0.5 * seg_width[0] + 7.0 * sc))

    # Radius and ulna, reaching below the image.
    rw = ws * rng.normal(1.0, 0.03)
    tubes.append(
        TubeBone(
            name=f"{side}_radius",
            origin=(6.0 * sc, -130.0),
            axis=(0.0, 1.0),
            length=130.0 + 1.5 * sc,
            width_base=15 * rw,
            width_shaft=15 * rw,
            width_head=24 * rw,
            cortex=2.2 * rw,
            base=End("flat", plate=False, fade=False),
            # radial inclination: the radial side (-v for this axis) reaches further
            head=End("radius", tilt=0.3, plate=True),
            density=anatomy.density,
        )
    )
    tubes.append(
        TubeBone(
            name=f"{side}_ulna",
            origin=(-13.5 * sc, -130.0),
            axis=(0.0, 1.0),
            length=130.0 - 0.5 * sc,
            width_base=11 * rw,
            width_shaft=11 * rw,
            width_head=13 * rw,
            cortex=2.0 * rw,
            base=End("flat", plate=False, fade=False),
            head=End("tuft", plate=True),
            density=anatomy.density,
        )
    )
    carpals = [
        EllipsoidBone(
            name=f"{side}_{name}",
            center=(x * sc + rng.normal(0, 0.4), y * sc + rng.normal(0, 0.4)),
            axis=(math.cos(math.radians(ang)), math.sin(math.radians(ang))),
            a=a * ws * 1.15,
            b=b * ws * 1.15,
            density=anatomy.density,
        )
        for name, x, y, a, b, ang in _CARPALS
    ]
    mc_heads = {t.name: t for t in tubes}
    palm = _palm_polygon(mc_heads, side, sc)
    forearm = np.array(
        [[-26 * sc, 8 * sc], [25 * sc, 8 * sc], [21 * sc, -160.0], [-24 * sc, -160.0]]
    )
    return Hand(side, tubes, carpals, joints, strokes, [palm, forearm], blobs)


def _palm_polygon(tubes: dict[str, TubeBone], side: Side, sc: float) -> np.ndarray:
    """The palm: around the metacarpals, from the wrist to just beyond the MCP heads."""
    pts = []
    for ray in (2, 3, 4, 5):
        t = tubes[f"{side}_MC{ray}"]
        head = np.array(t.origin) + (t.length + 3.0 * sc) * np.array(t.axis)
        pts.append(head)
    mc5 = tubes[f"{side}_MC5"]
    mc2 = tubes[f"{side}_MC2"]
    mc1 = tubes[f"{side}_MC1"]
    n5 = np.array(_rot90(mc5.axis))
    ulnar_mid = np.array(mc5.origin) + 0.5 * mc5.length * np.array(mc5.axis) + 7.5 * sc * n5
    ulnar_head = np.array(mc5.origin) + mc5.length * np.array(mc5.axis) + 6.0 * sc * n5
    thenar = np.array(mc1.origin) + 0.75 * mc1.length * np.array(mc1.axis)
    radial = np.array(mc2.origin) + 0.55 * mc2.length * np.array(mc2.axis) + (5.0 * sc, 0.0)
    pts = [
        np.array([-24.0 * sc, 2.0 * sc]),
        ulnar_mid,
        ulnar_head,
        *pts[::-1],
        radial,
        thenar,
        np.array([24.0 * sc, 6.0 * sc]),
    ]
    return np.array(pts)
