"""Real radiographs that carry only landmarks: each landmarked joint matched to the
prediction at it, and each prediction to the landmark it lies at.

Distances are judged against the hand's own size, because scanned films carry no pixel spacing:
the scale of a hand is the mean over fingers 2–5 of the MCP–PIP landmark distance (about the
proximal phalanx, 33–45 mm in adults), and a prediction counts as at a landmark when its centre
lies within ``TOLERANCE_FRACTION`` of that scale (about 10 mm, under half the distance between
neighbouring joints). Joint names are compared without the patient side, so a mirrored image is
not counted as all wrong for its side alone; side agreement is reported on its own where the
hand's side is known.

Pure computation: no files, no images, no DICOM. :mod:`.landmarks` makes the figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..joints import JOINT_NAMES

#: a prediction is at a landmark when within this fraction of the hand's MCP–PIP distance
TOLERANCE_FRACTION = 0.25
#: the ten scored joints of a hand
SCORED_NAMES: tuple[str, ...] = JOINT_NAMES

Point = tuple[float, float]
JointOutcomeKind = Literal["found", "mislabelled", "missed"]
#: right: at the landmark of its own name; mislabelled: at a landmark of another name (DIPs
#: included); duplicate: a second prediction of a name already found there; unmatched: at no
#: landmark (a false detection, or a hand that has no landmarks)
PredictionKind = Literal["right", "mislabelled", "duplicate", "unmatched"]


def joint_name(label: str) -> str:
    """``L_PIP3`` → ``PIP3``; ``PIP3`` stays."""
    return label[2:] if label[:2] in ("L_", "R_") else label


def label_side(label: str) -> str:
    """``L_PIP3`` → ``L``; a label without a side gives ``""``."""
    return label[0] if label[:2] in ("L_", "R_") else ""


def type_of(name: str) -> str:
    """``PIP3`` → ``PIP``, ``IP`` → ``IP``, ``MCP1`` → ``MCP``, ``DIP2`` → ``DIP``."""
    return "IP" if name == "IP" else name.rstrip("0123456789")


@dataclass(frozen=True)
class Prediction:
    """One joint as the model gave it: label with or without side, box centre and grades."""

    label: str
    centre: Point
    jsn: int | None
    erosion: int | None
    assessable: bool = True

    @classmethod
    def from_box(
        cls,
        label: str,
        box: Sequence[float],
        jsn: int | None,
        erosion: int | None,
        assessable: bool = True,
    ) -> Prediction:
        x, y, w, h = box
        return cls(label, (x + w / 2, y + h / 2), jsn, erosion, assessable)


@dataclass(frozen=True)
class HandLandmarks:
    """The landmarks of one hand in one image.

    ``joints`` maps scored joint names (``IP``, ``PIP2``…, ``MCP1``…) to pixels; ``dips`` maps
    ``DIP2``…``DIP5`` (never scored, but a detector's likeliest confusion). ``side`` is the
    patient side of the hand when known (``L``/``R``, else ``""``); ``spacing_mm`` the pixel
    spacing when known.
    """

    image_id: str
    joints: Mapping[str, Point]
    dips: Mapping[str, Point] = field(default_factory=dict)
    side: str = ""
    spacing_mm: float | None = None

    def scale(self) -> float | None:
        """Mean over fingers 2–5 of |MCPk − PIPk| in pixels; None without a pair."""
        lengths = [
            math.dist(self.joints[f"MCP{k}"], self.joints[f"PIP{k}"])
            for k in range(2, 6)
            if f"MCP{k}" in self.joints and f"PIP{k}" in self.joints
        ]
        return float(np.mean(lengths)) if lengths else None


@dataclass(frozen=True)
class JointOutcome:
    """What became of one landmarked joint."""

    name: str
    joint_type: str
    outcome: JointOutcomeKind
    #: index of the prediction found with the right name, or of the mislabelled one
    prediction: int | None
    error_fraction: float | None  #: distance to the right prediction / hand scale
    error_mm: float | None  #: the same in mm, when the spacing is known
    #: found joints: "agree"/"disagree" with the hand's known side, "" when unknown
    side: str = ""


@dataclass(frozen=True)
class PredictionOutcome:
    kind: PredictionKind
    landmark: str  #: the landmark it lies at (the nearest within tolerance), "" if none


@dataclass(frozen=True)
class ImageMatch:
    """The predictions of one image matched to its landmarks."""

    image_id: str
    scale: float | None  #: None: too few landmarks to judge distances, image not evaluated
    tolerance: float | None
    joints: tuple[JointOutcome, ...]
    predictions: tuple[PredictionOutcome, ...]


def match_image(
    hand: HandLandmarks,
    predictions: Sequence[Prediction],
    tolerance_fraction: float = TOLERANCE_FRACTION,
) -> ImageMatch:
    """Match one image's predictions to its landmarks (names compared without side)."""
    scale = hand.scale()
    if scale is None or scale <= 0:
        return ImageMatch(
            hand.image_id,
            None,
            None,
            (),
            tuple(PredictionOutcome("unmatched", "") for _ in predictions),
        )
    tolerance = tolerance_fraction * scale
    names = [joint_name(p.label) for p in predictions]
    kinds: list[PredictionKind | None] = [None] * len(predictions)
    landmarks_at: list[str] = [""] * len(predictions)
    right = _found_by_name(hand, predictions, names, tolerance)
    for name, (i, _) in right.items():
        kinds[i], landmarks_at[i] = "right", name
    _place_the_rest(hand, predictions, names, tolerance, kinds, landmarks_at)
    joints = _joint_outcomes(hand, predictions, names, kinds, right, scale, tolerance)
    outcomes = tuple(
        PredictionOutcome(k or "unmatched", at) for k, at in zip(kinds, landmarks_at, strict=True)
    )
    return ImageMatch(hand.image_id, scale, tolerance, tuple(joints), outcomes)


def _found_by_name(
    hand: HandLandmarks, predictions: Sequence[Prediction], names: list[str], tolerance: float
) -> dict[str, tuple[int, float]]:
    """Each landmarked joint's nearest prediction of its own name, if within tolerance:
    name → (prediction index, distance)."""
    right: dict[str, tuple[int, float]] = {}
    for name, point in hand.joints.items():
        candidates = [
            (math.dist(p.centre, point), i) for i, p in enumerate(predictions) if names[i] == name
        ]
        if candidates:
            distance, i = min(candidates)
            if distance <= tolerance:
                right[name] = (i, distance)
    return right


def _place_the_rest(
    hand: HandLandmarks,
    predictions: Sequence[Prediction],
    names: list[str],
    tolerance: float,
    kinds: list[PredictionKind | None],
    landmarks_at: list[str],
) -> None:
    """Every prediction not yet placed: at the nearest landmark (scored or DIP) within
    tolerance, a duplicate of its name or mislabelled; else unmatched."""
    all_landmarks = {**hand.joints, **hand.dips}
    for i, p in enumerate(predictions):
        if kinds[i] is not None:
            continue
        near = [
            (d, name)
            for name, point in all_landmarks.items()
            if (d := math.dist(p.centre, point)) <= tolerance
        ]
        if not near:
            kinds[i] = "unmatched"
            continue
        _, name = min(near)
        landmarks_at[i] = name
        kinds[i] = "duplicate" if name == names[i] else "mislabelled"


def _joint_outcomes(
    hand: HandLandmarks,
    predictions: Sequence[Prediction],
    names: list[str],
    kinds: list[PredictionKind | None],
    right: dict[str, tuple[int, float]],
    scale: float,
    tolerance: float,
) -> list[JointOutcome]:
    """Each landmarked scored joint: found (by a prediction of its name), mislabelled (the
    nearest prediction of another name, not right elsewhere, within tolerance) or missed."""

    def mislabelled_at(name: str) -> int | None:
        point = hand.joints[name]
        near = [
            (d, i)
            for i, p in enumerate(predictions)
            if kinds[i] != "right"
            and names[i] != name
            and (d := math.dist(p.centre, point)) <= tolerance
        ]
        return min(near)[1] if near else None

    joints = []
    for name in SCORED_NAMES:
        if name not in hand.joints:
            continue
        if name in right:
            i, distance = right[name]
            side = label_side(predictions[i].label)
            joints.append(
                JointOutcome(
                    name,
                    type_of(name),
                    "found",
                    i,
                    distance / scale,
                    distance * hand.spacing_mm if hand.spacing_mm else None,
                    ("agree" if side == hand.side else "disagree") if hand.side and side else "",
                )
            )
        elif (other := mislabelled_at(name)) is not None:
            joints.append(JointOutcome(name, type_of(name), "mislabelled", other, None, None))
        else:
            joints.append(JointOutcome(name, type_of(name), "missed", None, None, None))
    return joints
