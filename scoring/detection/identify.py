"""Which joint is which: detections → labelled joints (``R_PIP3``, ``L_MCP1``, …).

A hand's ten scored joints form a shape that changes little between people: the MCP heads in an
arc, each PIP joint above its MCP, the thumb's two joints off to the side. The shape is learned
from training truth (a mean shape after Procrustes alignment, right hand orientation) and fitted
to each hand's detections by a similarity transform (rotation, scale, translation; mirrored for
a left hand), searched over a grid and refined by least squares. Detections then go to the
nearest template joint (Hungarian assignment, gated); template joints left over are reported as
missing, with the place they should be, and detections left over (DIP joints, carpals, false
alarms) as unplaced.

Hands are PA with fingers up, the patient's right hand on the image's left, thumbs inward.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from ..joints import JOINT_NAMES

_ANGLES = np.deg2rad(np.arange(-45.0, 45.1, 7.5))
_SCALES = np.array([0.84, 1.0, 1.16])
_ROTATIONS = [np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) for a in _ANGLES]
_PLAUSIBLE_SCALE = (0.7, 1.4)  #: hand size relative to the mean hand
#: a hand needs at least this many of its ten joints in their places (a partly shown hand may
#: lack some; chance arrangements of false detections rarely reach it)
MIN_JOINTS_PER_HAND = 5
#: template joints that anchor translation hypotheses: the most reliably seen ones
_ANCHORS = ("MCP2", "MCP3", "MCP4", "PIP3", "PIP4")


@dataclass(frozen=True)
class Detection:
    """A joint candidate: box in full-resolution pixels (x, y, w, h) and a confidence."""

    box: tuple[float, float, float, float]
    confidence: float = 1.0

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2.0, y + h / 2.0


@dataclass(frozen=True)
class HandTemplate:
    """Mean positions (mm) of the ten scored joints of a right hand, centred at the origin."""

    names: tuple[str, ...]
    points_mm: np.ndarray
    joint_size_mm: dict[str, float]  #: mean box side per joint name

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "points_mm": np.round(self.points_mm, 3).tolist(),
            "joint_size_mm": {k: round(v, 3) for k, v in self.joint_size_mm.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HandTemplate:
        return cls(
            tuple(data["names"]),
            np.asarray(data["points_mm"], dtype=float),
            {k: float(v) for k, v in data["joint_size_mm"].items()},
        )

    @classmethod
    def load(cls, path: str) -> HandTemplate:
        with open(path) as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def learn(
        cls, hands: Sequence[tuple[str, dict[str, tuple[float, float]], dict[str, float]]]
    ) -> HandTemplate:
        """Generalised Procrustes mean of hands given as (side, centres mm, box sides mm)."""
        shapes = []
        sizes: dict[str, list[float]] = {n: [] for n in JOINT_NAMES}
        for side, centres, boxes in hands:
            if not all(n in centres for n in JOINT_NAMES):
                continue
            pts = np.array([centres[n] for n in JOINT_NAMES], dtype=float)
            if side == "L":
                pts[:, 0] *= -1.0
            shapes.append(pts - pts.mean(axis=0))
            for n in JOINT_NAMES:
                sizes[n].append(boxes[n])
        if not shapes:
            raise ValueError("no complete hand to learn the joint layout from")
        mean = shapes[0]
        for _ in range(5):
            aligned = [_similarity_apply(_umeyama(s, mean), s) for s in shapes]
            new = np.mean(aligned, axis=0)
            new -= new.mean(axis=0)
            new *= math.sqrt(np.sum(shapes[0] ** 2) / np.sum(new**2))  # keep the scale in mm
            if np.allclose(new, mean, atol=1e-4):
                break
            mean = new
        size = {n: float(np.mean(v)) for n, v in sizes.items()}
        return cls(tuple(JOINT_NAMES), mean, size)


@dataclass
class Identification:
    """Labelled joints of one image, what was expected and not found, and what is left over."""

    joints: dict[str, Detection] = field(default_factory=dict)
    #: label → predicted centre (pixels) of an expected joint with no detection
    missing: dict[str, tuple[float, float]] = field(default_factory=dict)
    unplaced: list[Detection] = field(default_factory=list)
    hands: list[str] = field(default_factory=list)
    #: label → box side (pixels) a joint of this hand should have: the mean joint's, scaled
    #: by the fitted hand size; steadier than the cascade's own box size
    expected_size: dict[str, float] = field(default_factory=dict)


Similarity = tuple[float, np.ndarray, np.ndarray]  # scale, rotation 2×2, translation


def _umeyama(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """Least-squares similarity (no reflection) taking ``src`` points onto ``dst``."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, 1.0 if np.linalg.det(u @ vt) > 0 else -1.0])
    rot = u @ sign @ vt
    var = float(np.mean(np.sum(a**2, axis=1)))
    scale = float(np.trace(np.diag(d) @ sign) / var) if var > 0 else 1.0
    return scale, rot, mu_d - scale * rot @ mu_s


def _similarity_apply(sim: Similarity, pts: np.ndarray) -> np.ndarray:
    scale, rot, t = sim
    return np.asarray(scale * pts @ rot.T + t)


def _fit_hand(
    points: np.ndarray, template: np.ndarray, gate: float, anchors: Sequence[int] | None = None
) -> tuple[np.ndarray, dict[int, int], float]:
    """Place ``template`` (k×2) on ``points`` (n×2); returns the placed template, the
    template → point assignment and a cost (lower is better): ``gate`` for each template joint
    without a point, plus the distances of the assigned ones."""
    k = len(template)
    if len(points) == 0:
        return template.copy(), {}, k * gate
    anchor_idx = np.asarray(anchors if anchors is not None else range(k))
    tree = cKDTree(points)
    # every pose of the grid, and for each every (point, anchor joint) pair proposing a
    # translation, judged in one query of the tree
    shaped = np.stack(
        [scale * template @ rot.T for rot in _ROTATIONS for scale in _SCALES]
    )  # poses×k×2
    shifts = points[None, :, None, :] - shaped[:, None, anchor_idx, :]  # poses×n×anchors×2
    shifts = shifts.reshape(len(shaped), -1, 2)  # poses×c×2
    moved = shaped[:, None, :, :] + shifts[:, :, None, :]  # poses×c×k×2
    nearest = np.minimum(tree.query(moved.reshape(-1, 2), distance_upper_bound=gate)[0], gate)
    nearest = nearest.reshape(moved.shape[:3])
    score = (nearest < gate).sum(axis=2) - nearest.sum(axis=2) / (2.0 * gate * k)
    pose, i = np.unravel_index(int(np.argmax(score)), score.shape)
    placed = shaped[pose] + shifts[pose, i]
    assignment: dict[int, int] = {}
    for _ in range(4):
        d = np.linalg.norm(placed[:, None, :] - points[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(np.where(d < gate, d, 1e6))
        assignment = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if d[r, c] < gate}
        if len(assignment) < 3:
            break
        idx = sorted(assignment)
        sim = _umeyama(template[idx], points[[assignment[i] for i in idx]])
        if not _PLAUSIBLE_SCALE[0] <= sim[0] <= _PLAUSIBLE_SCALE[1]:
            return placed, {}, k * gate  # no hand is that small or that large
        placed = _similarity_apply(sim, template)
    d = np.linalg.norm(placed[:, None, :] - points[None, :, :], axis=2)
    assignment = {r: c for r, c in assignment.items() if d[r, c] < gate}
    cost = (k - len(assignment)) * gate + sum(float(d[r, c]) for r, c in assignment.items())
    return placed, assignment, cost


def _scale_of(placed: np.ndarray, template: np.ndarray) -> float:
    """How much larger the placed hand is than the mean hand."""
    a = placed - placed.mean(axis=0)
    b = template - template.mean(axis=0)
    return float(np.sqrt(np.sum(a**2) / max(np.sum(b**2), 1e-9)))


@dataclass
class _HandFit:
    side: str
    indices: np.ndarray  #: detections of this hand
    placed: np.ndarray
    assignment: dict[int, int]
    cost: float


def _best_fit(
    points: np.ndarray, idx: np.ndarray, sides: Sequence[str], template: np.ndarray, gate: float
) -> _HandFit:
    fits = []
    for side in sides:
        tmpl = template.copy()
        if side == "L":
            tmpl[:, 0] *= -1.0
        anchors = [JOINT_NAMES.index(n) for n in _ANCHORS]
        placed, assignment, cost = _fit_hand(points[idx], tmpl, gate, anchors)
        fits.append(_HandFit(side, idx, placed, assignment, cost))
    return min(fits, key=lambda f: f.cost)


def _two_hand_splits(x: np.ndarray, order: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Candidate splits of the x-sorted detections into a left and a right hand: the two-means
    split of x, and the three widest gaps, each leaving at least three detections a side."""
    xs = x[order]
    cuts: list[int] = []
    lo, hi = float(xs[0]), float(xs[-1])
    for _ in range(10):  # two-means in one dimension
        cut = int(np.searchsorted(xs, (lo + hi) / 2.0))
        if cut == 0 or cut == len(xs):
            break
        lo, hi = float(xs[:cut].mean()), float(xs[cut:].mean())
    else:
        cuts.append(cut)
    gaps = np.diff(xs)
    cuts += [int(i) + 1 for i in np.argsort(gaps)[::-1][:3]]
    unique = sorted({c for c in cuts if 3 <= c <= len(xs) - 3})
    return [(order[:c], order[c:]) for c in unique]


def _hand_fits(
    points: np.ndarray, laterality: str, template: np.ndarray, gate: float
) -> list[_HandFit]:
    """Split the detections into hands and fit each; the split and sides with the lowest cost
    win. An unexplained detection costs as much as a missing joint, so one hand never explains
    two."""
    order = np.argsort(points[:, 0])

    def total(fits: list[_HandFit]) -> float:
        explained = sum(len(f.assignment) for f in fits)
        return sum(f.cost for f in fits) + gate * (len(points) - explained)

    hypotheses: list[list[_HandFit]] = []
    if laterality in ("L", "R", "U"):
        sides = [laterality] if laterality != "U" else ["R", "L"]
        hypotheses.append([_best_fit(points, order, sides, template, gate)])
    if laterality in ("B", "U") and len(order) >= 6:
        for left, right in _two_hand_splits(points[:, 0], order):
            hypotheses.append(
                [
                    _best_fit(points, left, ["R"], template, gate),
                    _best_fit(points, right, ["L"], template, gate),
                ]
            )
    if not hypotheses:  # "B" with too few detections for two hands
        hypotheses.append([_best_fit(points, order, ["R", "L"], template, gate)])
    best = min(hypotheses, key=total)
    return [f for f in best if len(f.assignment) >= MIN_JOINTS_PER_HAND]


def identify(
    detections: Sequence[Detection],
    spacing_mm: float,
    laterality: str,
    template: HandTemplate,
    gate_mm: float = 11.0,
) -> Identification:
    """Label ``detections`` of one image; ``laterality`` is L, R, B (both hands) or U."""
    result = Identification()
    if not detections:
        return result
    centres = np.array([d.center for d in detections], dtype=float) * spacing_mm
    placed_any: set[int] = set()
    for fit in _hand_fits(centres, laterality, template.points_mm, gate_mm):
        result.hands.append(fit.side)
        scale = _scale_of(fit.placed, template.points_mm)
        for k, name in enumerate(template.names):
            label = f"{fit.side}_{name}"
            result.expected_size[label] = scale * template.joint_size_mm[name] / spacing_mm
            if k in fit.assignment:
                index = int(fit.indices[fit.assignment[k]])
                result.joints[label] = detections[index]
                placed_any.add(index)
            else:
                cx, cy = fit.placed[k] / spacing_mm
                result.missing[label] = (float(cx), float(cy))
    result.unplaced = [d for i, d in enumerate(detections) if i not in placed_any]
    return result
