"""A hand's skeleton and soft tissue, with each scored joint's disease drawn into its bones.

The hand is built in its own frame — x towards the thumb, y towards the fingertips, mm, origin
at the centre of the distal radius — as a chain per ray: metacarpal → proximal → middle →
distal phalanx. A joint places the distal bone around the head of the proximal one: the head is
a circle of radius ρ, the base a concentric cup of radius ρ + gap, so the joint space stays
even when the finger bends. JSN narrows it at one margin (focal) or all across, shifts it
(subluxation), closes it with a bony
bridge (ankylosis) or dislocates (luxation) that arrangement; erosions cut defects into the
bone ends. A :class:`~.hand.Pose` then mirrors, turns and moves the hand into the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .disease import JointScore, split_erosion
from .hand import Hand, JointGeometry
from .lesions import JointPlan, plan_jsn, surface_defects
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


def build_hand(
    rng: np.random.Generator,
    side: Side,
    anatomy: PatientAnatomy,
    scores: dict[str, JointScore],
    severity: float,
    lesion_rngs: Callable[[str], np.random.Generator] | None = None,
) -> Hand:
    """One hand, in the hand frame, with the disease of ``scores`` drawn into it.

    ``lesion_rngs`` (joint name → generator) draws each scored joint's lesions apart from the
    bones, so that a follow-up visit with other scores keeps the same bones; without it every
    draw comes from ``rng`` in one order, as a single phantom always has."""
    builder = _HandBuilder(rng, side, anatomy, scores, severity)
    builder.lesion_rngs = lesion_rngs
    for ray in (1, 2, 3, 4, 5):
        builder.add_ray(ray)
    return builder.finish()


@dataclass(frozen=True)
class _Bone:
    """The bone about to be laid along a ray, with its base as the joint below it left it."""

    origin: tuple[float, float]
    axis: tuple[float, float]
    angle: float  #: degrees from the hand's axis towards the thumb
    length: float
    widths: tuple[float, float, float]  #: base, shaft, head
    base: End
    defects: tuple[Defect, ...] = ()  #: erosions of the base
    osteopenia: float = 0.0  #: periarticular loss at the base


class _HandBuilder:
    """Lays one hand's bones ray by ray, joint by joint, and its soft tissue around them.

    The random draws are taken in one fixed order (a seed gives the same hand): keep it when
    changing anything here, or every phantom set changes.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        side: Side,
        anatomy: PatientAnatomy,
        scores: dict[str, JointScore],
        severity: float,
    ) -> None:
        self.rng, self.side, self.anatomy = rng, side, anatomy
        self.scores, self.severity = scores, severity
        self.sc, self.ws = anatomy.scale, anatomy.width_scale * anatomy.scale
        self.tubes: list[TubeBone] = []
        self.joints: list[JointGeometry] = []
        self.strokes: list[tuple[np.ndarray, float]] = []
        self.blobs: list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = []
        self.hand_spread = rng.uniform(0.6, 1.3)
        self.swell_p = 1 / (1 + math.exp(-(severity - 0.5) * 1.5)) * 0.5
        self.lesion_rngs: Callable[[str], np.random.Generator] | None = None
        self.lrng = rng  #: the current joint's lesion draws (``rng`` unless lesion_rngs)

    def widths(self, kind: str, ray: int) -> tuple[float, float, float]:
        f = _RAY_WIDTH[ray] * self.ws * self.rng.normal(1.0, 0.025)
        b, s, h = WIDTHS[kind]
        return b * f, s * f, h * f

    def add_ray(self, ray: int) -> None:
        """A metacarpal and its phalanges, each joint drawn as planned, and the finger's skin."""
        rng, sc = self.rng, self.sc
        lengths = self.anatomy.lengths[ray]
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
        widths = self.widths(kinds[0], ray)
        base = End("flat", plate=False)
        bone = _Bone(origin, _unit(angle), angle, bone_lengths[0] * sc, widths, base)
        finger_points = [np.array(origin)]
        for k in range(1, len(kinds)):
            name = f"{self.side}_{kinds[k - 1]}{'' if thumb else ray}"
            joint = (joint_kinds[k - 1], joint_names[k - 1])
            bone, apex = self._add_joint(ray, k, name, joint, kinds, bone_lengths[k], bone)
            finger_points.append(np.array(apex))
        name = f"{self.side}_{kinds[-1]}{'' if thumb else ray}"
        self.tubes.append(self._tube(name, kinds[-1], bone, End("tuft", plate=False)))
        tip_reach = bone.length + 3.0
        finger_points.append(
            np.array(
                (
                    bone.origin[0] + tip_reach * bone.axis[0],
                    bone.origin[1] + tip_reach * bone.axis[1],
                )
            )
        )
        self._finger_tissue(ray, kinds, np.array(finger_points))

    def _add_joint(
        self,
        ray: int,
        k: int,
        name: str,
        joint: tuple[str, str | None],
        kinds: tuple[str, ...],
        next_length: float,
        bone: _Bone,
    ) -> tuple[_Bone, tuple[float, float]]:
        """Lay ``bone`` up to joint ``k`` of the ray and place the bone beyond it; returns that
        bone and the apex of this one's head."""
        rng, sc = self.rng, self.sc
        kind_name, jname = joint
        jtype = "MCP" if kind_name.startswith("MCP") else kind_name
        w_next = self.widths(kinds[k], ray)
        normal_gap = _GAP[kind_name] * sc * self.anatomy.gap_scale
        rho = _HEAD_RADIUS[kind_name] * bone.widths[2]
        self.lrng = rng if self.lesion_rngs is None or jname is None else self.lesion_rngs(jname)
        plan = self._plan(jname, jtype, normal_gap, w_next[0])
        fused = plan.fused
        head = End("convex", radius=rho, plate=not fused, fade=not fused)
        head, head_defects, head_collapse = self._eroded(
            head, plan.surfaces[0], bone.widths[2], True, bone.length
        )
        self.tubes.append(self._tube(name, kinds[k - 1], bone, head, plan.osteopenia, head_defects))
        # Where the distal bone goes.
        axis = bone.axis
        apex = (bone.origin[0] + bone.length * axis[0], bone.origin[1] + bone.length * axis[1])
        centre = (apex[0] - rho * axis[0], apex[1] - rho * axis[1])
        spread = _SPREAD[ray] * self.hand_spread if k == 1 else rng.normal(0, 2.0)
        next_angle = bone.angle + spread + rng.normal(0, 2.5) + plan.bend
        next_axis = _unit(next_angle)
        n = _rot90(next_axis)
        cup = rho + (plan.gap if not fused else 0.0)
        base = End("concave", radius=cup, focal=plan.focal, plate=not fused, fade=not fused)
        base, base_defects, base_collapse = self._eroded(
            base, plan.surfaces[1], w_next[0], False, 0.0
        )
        along = cup - head_collapse - base_collapse - plan.proximal
        next_origin = (
            centre[0] + along * next_axis[0] + plan.lateral * n[0],
            centre[1] + along * next_axis[1] + plan.lateral * n[1],
        )
        if jname is not None:
            head_surface = (apex[0] - head_collapse * axis[0], apex[1] - head_collapse * axis[1])
            base_surface = (
                next_origin[0] + base_collapse * next_axis[0],
                next_origin[1] + base_collapse * next_axis[1],
            )
            self._record_joint(
                jname,
                plan,
                normal_gap,
                (head_surface, base_surface),
                next_axis,
                (bone.widths[2], w_next[0]),
            )
        # flexion foreshortens the phalanx in a PA projection
        length = next_length * sc * math.cos(math.radians(rng.uniform(0, 22)))
        beyond = _Bone(
            next_origin, next_axis, next_angle, length, w_next, base, base_defects, plan.osteopenia
        )
        return beyond, apex

    def _plan(
        self, jname: str | None, jtype: str, normal_gap: float, base_width: float
    ) -> JointPlan:
        """The joint's plan: its scores' lesions and confounders, or a healthy joint if unscored."""
        rng = self.lrng
        if jname is None:
            return JointPlan(gap=normal_gap * rng.uniform(0.9, 1.1), form="normal")
        score = self.scores[jname]
        plan = plan_jsn(rng, score.jsn, jtype, normal_gap, base_width)
        plan.surfaces = split_erosion(rng, score.erosion)
        if rng.random() < 0.25 + 0.5 * self.swell_p:
            plan.osteopenia = float(np.clip(rng.normal(0.2 + 0.12 * self.severity, 0.1), 0, 0.55))
        if rng.random() < self.swell_p:
            plan.swelling = float(rng.uniform(1.5, 4.0)) * self.sc
        return plan

    def _eroded(
        self, end: End, score: int, width: float, at_head: bool, length: float
    ) -> tuple[End, tuple[Defect, ...], float]:
        """A bone end with the erosions of its surface score, collapsed where the score is 5."""
        defects, collapse = surface_defects(self.lrng, score, width, at_head, length, end)
        if collapse:
            phases = tuple(float(x) for x in self.lrng.uniform(0, 2 * math.pi, 4))
            end = replace(end, collapse=collapse, plate=False, phases=phases)
        return end, defects, collapse

    def _tube(
        self,
        name: str,
        kind: str,
        bone: _Bone,
        head: End,
        osteopenia_head: float = 0.0,
        head_defects: tuple[Defect, ...] = (),
    ) -> TubeBone:
        w = bone.widths
        return TubeBone(
            name=name,
            origin=bone.origin,
            axis=bone.axis,
            length=bone.length,
            width_base=w[0],
            width_shaft=w[1],
            width_head=w[2],
            cortex=_CORTEX[kind] * self.ws,
            base=bone.base,
            head=head,
            density=self.anatomy.density,
            osteopenia_base=bone.osteopenia,
            osteopenia_head=osteopenia_head,
            defects=bone.defects + head_defects,
        )

    def _record_joint(
        self,
        jname: str,
        plan: JointPlan,
        normal_gap: float,
        surfaces: tuple[tuple[float, float], tuple[float, float]],
        axis: tuple[float, float],
        widths: tuple[float, float],
    ) -> None:
        """The joint's truth record, centred between its two surfaces, and its swelling."""
        (hx, hy), (bx, by) = surfaces
        mid = (0.5 * (hx + bx), 0.5 * (hy + by))
        half = 0.8 * max(widths) + 0.5 * math.dist(*surfaces)
        self.joints.append(
            JointGeometry(
                name=jname,
                center=mid,
                axis=axis,
                half_extent=half,
                score=self.scores[jname],
                form=plan.form,
                surfaces=plan.surfaces,
                gap=plan.gap,
                normal_gap=normal_gap,
                width=widths[0],
                osteopenia=plan.osteopenia,
                swelling=plan.swelling,
            )
        )
        if plan.swelling > 0:
            along_axis = 0.9 * widths[0] + 2.0
            across = 0.5 * widths[0] + 2.5 * self.sc + plan.swelling
            self.blobs.append((mid, (along_axis, across), axis))

    def _finger_tissue(self, ray: int, kinds: tuple[str, ...], pts: np.ndarray) -> None:
        """The finger's soft tissue, segment by segment (the palm covers the metacarpals)."""
        sc, thumb = self.sc, ray == 1
        pad = 2.8 * sc
        seg_width = [WIDTHS[k][0] * _RAY_WIDTH[ray] * self.ws for k in kinds]
        for i in range(1, len(pts) - 1):
            self.strokes.append(
                (pts[i : i + 2], 0.5 * seg_width[i] + pad + (4.0 if thumb else 0.0) * (i == 1))
            )
        if thumb:
            self.strokes.append((pts[0:2], 0.5 * seg_width[0] + 7.0 * sc))

    def finish(self) -> Hand:
        """The forearm's bones, the carpals, the palm and forearm outlines: the whole hand."""
        side, sc, ws, rng = self.side, self.sc, self.ws, self.rng
        self.tubes += _forearm_bones(side, sc, ws * rng.normal(1.0, 0.03), self.anatomy.density)
        carpals = [
            EllipsoidBone(
                name=f"{side}_{name}",
                center=(x * sc + rng.normal(0, 0.4), y * sc + rng.normal(0, 0.4)),
                axis=(math.cos(math.radians(ang)), math.sin(math.radians(ang))),
                a=a * ws * 1.15,
                b=b * ws * 1.15,
                density=self.anatomy.density,
            )
            for name, x, y, a, b, ang in _CARPALS
        ]
        palm = _palm_polygon({t.name: t for t in self.tubes}, side, sc)
        forearm = np.array(
            [[-26 * sc, 8 * sc], [25 * sc, 8 * sc], [21 * sc, -160.0], [-24 * sc, -160.0]]
        )
        return Hand(
            side, self.tubes, carpals, self.joints, self.strokes, [palm, forearm], self.blobs
        )


def _forearm_bones(side: Side, sc: float, rw: float, density: float) -> list[TubeBone]:
    """Radius and ulna, reaching below the image."""
    radius = TubeBone(
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
        density=density,
    )
    ulna = TubeBone(
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
        density=density,
    )
    return [radius, ulna]


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
