"""How well a model finds and names joints on real radiographs that carry only landmarks.

Real hands with per-joint landmarks (the Digital Hand Atlas format) have no boxes and, being
healthy, no grades to agree with: what can be measured is whether each scored joint is found
with the right name, how far off it is (:mod:`.landmark_match`), what it is confused with (a PIP
named MCP, a DIP named PIP), and which grades the model gives to joints that should get JSN 0
and erosion 0. Rates come with bootstrap intervals over images.

Pure computation: no files, no images, no DICOM.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .landmark_match import (
    TOLERANCE_FRACTION,
    HandLandmarks,
    ImageMatch,
    JointOutcome,
    Prediction,
    joint_name,
    match_image,
)

JOINT_TYPES: tuple[str, ...] = ("PIP", "IP", "MCP")
BOOTSTRAP_SAMPLES = 2000


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


Selected = list[tuple[HandLandmarks, ImageMatch, Sequence[Prediction], list[JointOutcome]]]


def _figures(selected: Selected, samples: int, seed: int) -> TypeFigures:
    outcomes = [o for _, _, _, chosen in selected for o in chosen]
    counts = Counter(o.outcome for o in outcomes)
    found_per_image = [sum(o.outcome == "found" for o in c) for _, _, _, c in selected]
    joints_per_image = [len(c) for _, _, _, c in selected]
    found = counts["found"]
    grades, side = _grades(selected, found, samples, seed)
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
        grades=grades,
        side=side,
    )


def _grades(
    selected: Selected, found: int, samples: int, seed: int
) -> tuple[Grades, SideAgreement | None]:
    """The grades given to the found joints, and how often their side agrees with the hand's
    (None when no hand's side is known)."""
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
    grades = Grades(
        jsn=dict(sorted(jsn.items())),
        erosion=dict(sorted(erosion.items())),
        assessable=assessable,
        not_assessable=not_assessable,
        abstention_rate=_rate(not_assessable, found),
        graded_2_or_more=sum(high_per_image),
        rate_2_or_more=_rate(sum(high_per_image), sum(graded_per_image)),
        rate_2_or_more_ci=bootstrap_rate(high_per_image, graded_per_image, samples, seed),
    )
    side = SideAgreement(side_joints, side_agree, _rate(side_agree, side_joints))
    return grades, side if side_known else None


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
