"""A built hand: its bones, scored joints and soft tissue in the hand frame, and the
:class:`Pose` that mirrors, turns and moves it into the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .disease import JointScore
from .model import Side
from .render import EllipsoidBone, End, TubeBone


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
