"""How well a model finds and names joints on real radiographs that carry only landmarks.

Real hands with per-joint landmarks (the Digital Hand Atlas format) have no boxes and, being
healthy, no grades to agree with: what can be measured is whether each scored joint is found
with the right name, how far off it is, what it is confused with (a PIP named MCP, a DIP named
PIP), and which grades the model gives to joints that should get JSN 0 and erosion 0.

Distances are judged against the hand's own size, because scanned films carry no pixel spacing:
the scale of a hand is the mean over fingers 2–5 of the MCP–PIP landmark distance (about the
proximal phalanx, 33–45 mm in adults), and a prediction counts as at a landmark when its centre
lies within ``TOLERANCE_FRACTION`` of that scale (about 10 mm, under half the distance between
neighbouring joints). Joint names are compared without the patient side, so a mirrored image is
not counted as all wrong for its side alone; side agreement is reported on its own where the
hand's side is known.

Pure computation: no files, no images, no DICOM.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from .joints import JOINT_NAMES

#: a prediction is at a landmark when within this fraction of the hand's MCP–PIP distance
TOLERANCE_FRACTION = 0.25
JOINT_TYPES: tuple[str, ...] = ("PIP", "IP", "MCP")
#: the ten scored joints of a hand
SCORED_NAMES: tuple[str, ...] = JOINT_NAMES
BOOTSTRAP_SAMPLES = 2000

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
    right: dict[str, tuple[int, float]] = {}

    # 1. each landmarked joint: the nearest prediction of its own name, if within tolerance
    for name, point in hand.joints.items():
        candidates = [
            (math.dist(p.centre, point), i) for i, p in enumerate(predictions) if names[i] == name
        ]
        if candidates:
            distance, i = min(candidates)
            if distance <= tolerance:
                right[name] = (i, distance)
                kinds[i] = "right"
                landmarks_at[i] = name

    # 2. every other prediction: the nearest landmark (scored or DIP) within tolerance
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

    def mislabelled_at(name: str) -> int | None:
        """The nearest prediction of another name, not right elsewhere, within tolerance."""
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
    outcomes = tuple(
        PredictionOutcome(k or "unmatched", at) for k, at in zip(kinds, landmarks_at, strict=True)
    )
    return ImageMatch(hand.image_id, scale, tolerance, tuple(joints), outcomes)


@dataclass(frozen=True)
class Interval:
    """A 95 % bootstrap confidence interval over images (percentile method)."""

    low: float | None
    high: float | None


@dataclass(frozen=True)
class Spread:
    """Median and 95th percentile of a localisation error."""

    n: int
    median: float | None
    p95: float | None


@dataclass(frozen=True)
class Grades:
    """The grades given to found joints that, the hands being healthy, should all be 0."""

    #: class → count over the found joints that were graded
    jsn: dict[int, int]
    erosion: dict[int, int]
    assessable: int
    not_assessable: int
    abstention_rate: float | None  #: not assessable / found
    #: found, assessable joints given JSN ≥ 2 or erosion ≥ 2 (clear damage on a healthy joint)
    graded_2_or_more: int
    rate_2_or_more: float | None
    rate_2_or_more_ci: Interval


@dataclass(frozen=True)
class SideAgreement:
    """Found joints whose predicted side matches the hand's known side."""

    joints: int
    agree: int
    rate: float | None


@dataclass(frozen=True)
class TypeFigures:
    """The figures of one joint type (or of all joints)."""

    joints: int  #: landmarked joints
    found: int  #: found with the right name (side ignored)
    found_rate: float | None
    found_rate_ci: Interval
    mislabelled: int  #: not found, but a prediction of another name lies there
    missed: int  #: no prediction lies there
    error_fraction: Spread  #: distance to the landmark / hand scale, found joints
    error_mm: Spread  #: the same in mm, for images with a known spacing
    grades: Grades
    side: SideAgreement | None  #: None when no hand's side is known


@dataclass(frozen=True)
class PredictionFigures:
    """Every prediction, by where it lies."""

    total: int
    right: int
    mislabelled: int
    duplicate: int
    unmatched: int
    #: "landmark->predicted name" → count, e.g. "DIP3->PIP3", "PIP2->MCP2"
    confusions: dict[str, int]


@dataclass(frozen=True)
class LandmarkEvaluation:
    images: int
    #: images left out because their landmarks give no hand scale
    images_without_scale: tuple[str, ...]
    tolerance_fraction: float
    overall: TypeFigures
    per_type: dict[str, TypeFigures]
    predictions: PredictionFigures
    matches: tuple[ImageMatch, ...] = field(repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready data (the per-image matches left out)."""
        out = asdict(self)
        del out["matches"]
        return _jsonable(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def _rate(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _spread(values: Sequence[float]) -> Spread:
    if not values:
        return Spread(0, None, None)
    return Spread(
        len(values), float(np.median(values)), float(np.percentile(values, 95, method="linear"))
    )


def bootstrap_rate(
    numerators: Sequence[float],
    denominators: Sequence[float],
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> Interval:
    """95 % interval of sum(numerators)/sum(denominators) with images resampled with
    replacement (joints of one image are not independent, so images are the unit).
    Resamples with a zero denominator are dropped; seeded, so the figures repeat."""
    num = np.asarray(numerators, dtype=float)
    den = np.asarray(denominators, dtype=float)
    if len(num) == 0 or den.sum() == 0:
        return Interval(None, None)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(num), size=(samples, len(num)))
    totals = den[picks].sum(axis=1)
    keep = totals > 0
    rates = num[picks].sum(axis=1)[keep] / totals[keep]
    low, high = np.percentile(rates, [2.5, 97.5])
    return Interval(float(low), float(high))


def _figures(
    selected: list[tuple[HandLandmarks, ImageMatch, Sequence[Prediction], list[JointOutcome]]],
    samples: int,
    seed: int,
) -> TypeFigures:
    outcomes = [o for _, _, _, chosen in selected for o in chosen]
    counts = Counter(o.outcome for o in outcomes)
    found_per_image = [sum(o.outcome == "found" for o in c) for _, _, _, c in selected]
    joints_per_image = [len(c) for _, _, _, c in selected]

    jsn: Counter[int] = Counter()
    erosion: Counter[int] = Counter()
    assessable = not_assessable = 0
    high_per_image: list[int] = []
    graded_per_image: list[int] = []
    side_joints = side_agree = 0
    side_known = False
    for hand, _, predictions, chosen in selected:
        side_known = side_known or bool(hand.side)
        high = graded = 0
        for o in chosen:
            if o.outcome != "found" or o.prediction is None:
                continue
            p = predictions[o.prediction]
            if o.side:
                side_joints += 1
                side_agree += o.side == "agree"
            if not p.assessable:
                not_assessable += 1
                continue
            assessable += 1
            if p.jsn is not None:
                jsn[p.jsn] += 1
            if p.erosion is not None:
                erosion[p.erosion] += 1
            graded += 1
            high += (p.jsn or 0) >= 2 or (p.erosion or 0) >= 2
        high_per_image.append(high)
        graded_per_image.append(graded)

    found = counts["found"]
    return TypeFigures(
        joints=len(outcomes),
        found=found,
        found_rate=_rate(found, len(outcomes)),
        found_rate_ci=bootstrap_rate(found_per_image, joints_per_image, samples, seed),
        mislabelled=counts["mislabelled"],
        missed=counts["missed"],
        error_fraction=_spread(
            [o.error_fraction for o in outcomes if o.error_fraction is not None]
        ),
        error_mm=_spread([o.error_mm for o in outcomes if o.error_mm is not None]),
        grades=Grades(
            jsn=dict(sorted(jsn.items())),
            erosion=dict(sorted(erosion.items())),
            assessable=assessable,
            not_assessable=not_assessable,
            abstention_rate=_rate(not_assessable, found),
            graded_2_or_more=sum(high_per_image),
            rate_2_or_more=_rate(sum(high_per_image), sum(graded_per_image)),
            rate_2_or_more_ci=bootstrap_rate(high_per_image, graded_per_image, samples, seed),
        ),
        side=SideAgreement(side_joints, side_agree, _rate(side_agree, side_joints))
        if side_known
        else None,
    )


def evaluate_landmarks(
    images: Iterable[tuple[HandLandmarks, Sequence[Prediction]]],
    tolerance_fraction: float = TOLERANCE_FRACTION,
    bootstrap_samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> LandmarkEvaluation:
    """Figures per joint type and overall over images of one landmarked hand each."""
    rows = []
    without_scale = []
    matches = []
    for hand, predictions in images:
        match = match_image(hand, predictions, tolerance_fraction)
        matches.append(match)
        if match.scale is None:
            without_scale.append(hand.image_id)
            continue
        rows.append((hand, match, predictions))

    def select(kind: str | None) -> list[Any]:
        return [
            (hand, match, preds, [o for o in match.joints if kind is None or o.joint_type == kind])
            for hand, match, preds in rows
        ]

    kinds: Counter[str] = Counter()
    confusions: Counter[str] = Counter()
    for _, match, predictions in rows:
        for p, outcome in zip(predictions, match.predictions, strict=True):
            kinds[outcome.kind] += 1
            if outcome.kind == "mislabelled":
                confusions[f"{outcome.landmark}->{joint_name(p.label)}"] += 1
    return LandmarkEvaluation(
        images=len(rows),
        images_without_scale=tuple(without_scale),
        tolerance_fraction=tolerance_fraction,
        overall=_figures(select(None), bootstrap_samples, seed),
        per_type={t: _figures(select(t), bootstrap_samples, seed) for t in JOINT_TYPES},
        predictions=PredictionFigures(
            total=sum(kinds.values()),
            right=kinds["right"],
            mislabelled=kinds["mislabelled"],
            duplicate=kinds["duplicate"],
            unmatched=kinds["unmatched"],
            confusions=dict(confusions.most_common()),
        ),
        matches=tuple(matches),
    )
