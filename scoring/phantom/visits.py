"""Follow-up visits: the same patients' hands drawn again years later, their damage progressed.

A real follow-up shows the same person: the same bones, their disease at most the same or worse
(SvdH scores of a joint never heal), on another day's film with another pose. So a patient's
sex, age, severity, proportions and every bone (widths, lengths, finger angles) come from the
streams that draw them for a single phantom; the lesions of each joint from a stream of the
joint's own (a joint whose scores did not change looks the same at the next visit); the tissue
look, the rendering's look, pose, field and exposure from streams of the visit's own.

Progression (:func:`course`). The baseline is :func:`~.disease.sample_scores` (the paper's
Table 2, or uniform). Each patient then follows one course, drawn with more fast progressors
among the more severe:

- ``none`` (about 40 %): no change at all, as in remission on treatment;
- ``slow`` (about 40 %): 0.5–3 SvdH points a year over these twenty joints;
- ``fast`` (about 20 %): 5–12 points a year, rapid radiographic progression (its usual cut
  point is 5 points a year).

These rates are plausible values from RA cohorts, not a fit to data: the paper measures no
progression. A year's points are shared among the joints in proportion to where RA strikes
(``_PREFERENCE`` of :mod:`.disease`: MCP2–3 and the PIP joints first) and, within a joint,
half to JSN and half to erosion; each joint's steps are Poisson draws over the visit's interval,
capped at JSN 4 and erosion 5. A score never decreases.

Visit ``v`` (1-based) is ``(v − 1)·years_apart`` years after the first, each interval jittered
by up to three weeks. The first visit's scores equal those of the single phantom of the same
seed and index, but not its pixels: there, lesions and bones share one stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np

from .disease import _PREFERENCE, JointScore
from .generator import (
    ImageStreams,
    PhantomConfig,
    draw_image,
    patient_disease,
    patient_hands,
    study_layout,
)
from .model import JOINT_NAMES, Patient, PhantomImage, Side, Visit

Course = Literal["none", "slow", "fast"]
#: SvdH points a year (JSN + erosion over the twenty joints) of each course, low and high.
RATES: dict[Course, tuple[float, float]] = {
    "none": (0.0, 0.0),
    "slow": (0.5, 3.0),
    "fast": (5.0, 12.0),
}
JITTER_DAYS = 21
DAYS_PER_YEAR = 365.25
MAX_JSN, MAX_EROSION = 4, 5
_JSN_SHARE = 0.5
# stream tags, apart from those of generator.py (0–2, 5, 7, 99)
_COURSE, _LESIONS, _VISIT = 13, 19, 17


@dataclass(frozen=True)
class PatientCourse:
    """One patient's visits: when, and the scores of both hands at each."""

    patient: Patient
    course: Course
    points_per_year: float  #: expected SvdH points a year (JSN + erosion, twenty joints)
    days: tuple[int, ...]  #: per visit, days since the first
    scores: tuple[tuple[JointScore, ...], ...]  #: per visit, every joint of both hands

    def visit(self, number: int) -> Visit:
        return Visit(number=number, of=len(self.days), days=self.days[number - 1])


def _draw_course(rng: np.random.Generator, severity: float) -> tuple[Course, float]:
    """The patient's course and rate: the more severe, the likelier fast (20 % at average)."""
    fast = float(np.clip(0.2 + 0.1 * severity, 0.05, 0.4))
    u = rng.random()
    kind: Course = "fast" if u < fast else "none" if u < fast + 0.4 else "slow"
    low, high = RATES[kind]
    return kind, float(rng.uniform(low, high))


def _visit_days(rng: np.random.Generator, visits: int, years_apart: float) -> tuple[int, ...]:
    days = [0]
    step = round(years_apart * DAYS_PER_YEAR)
    for _ in range(visits - 1):
        jitter = int(rng.integers(-JITTER_DAYS, JITTER_DAYS + 1))
        days.append(days[-1] + max(1, step + jitter))
    return tuple(days)


def _weights() -> dict[str, float]:
    """Each joint's share of a patient's yearly points (both hands together sum to 1)."""
    raw = {name: float(np.exp(_PREFERENCE[name])) for name in JOINT_NAMES}
    total = 2 * sum(raw.values())
    return {name: w / total for name, w in raw.items()}


def _progress(
    rng: np.random.Generator, scores: tuple[JointScore, ...], points: float
) -> tuple[JointScore, ...]:
    """The scores ``points`` expected SvdH points later: Poisson steps per joint, capped."""
    weights = _weights()
    later = []
    for score in scores:
        mean = points * weights[score.name]
        jsn = score.jsn + int(rng.poisson(mean * _JSN_SHARE))
        erosion = score.erosion + int(rng.poisson(mean * (1 - _JSN_SHARE)))
        later.append(
            JointScore(score.side, score.name, min(jsn, MAX_JSN), min(erosion, MAX_EROSION))
        )
    return tuple(later)


def course(
    seed: int, patient_index: int, visits: int, years_apart: float, config: PhantomConfig
) -> PatientCourse:
    """Patient ``patient_index``'s ``visits`` visits, ``years_apart`` years apart."""
    if visits < 1 or years_apart <= 0:
        raise ValueError("visits must be at least 1 and years_apart positive")
    patient, _, baseline = patient_disease(seed, patient_index, config)
    rng = np.random.default_rng([seed, patient_index, _COURSE])
    kind, rate = _draw_course(rng, patient.severity)
    days = _visit_days(rng, visits, years_apart)
    scores = [tuple(baseline)]
    for before, after in pairwise(days):
        years = (after - before) / DAYS_PER_YEAR
        scores.append(_progress(rng, scores[-1], rate * years))
    return PatientCourse(patient, kind, rate, days, tuple(scores))


def generate_visit_image(
    seed: int,
    index: int,
    visit: int,
    patient_course: PatientCourse,
    config: PhantomConfig | None = None,
) -> PhantomImage:
    """Image ``index`` of the set at visit ``visit`` (1-based) of ``patient_course``, the
    course of the image's patient (:func:`course`)."""
    config = config or PhantomConfig()
    patient_index, sides = study_layout(index, config.hands)
    if patient_course.patient.index != patient_index:
        raise ValueError(f"image {index} is not of patient {patient_course.patient.index}")
    patient, anatomy, _ = patient_disease(seed, patient_index, config)

    def lesions(side: Side, name: str) -> np.random.Generator:
        code = 1 if side == "R" else 2
        return np.random.default_rng([seed, patient_index, code, _LESIONS, JOINT_NAMES.index(name)])

    scores = list(patient_course.scores[visit - 1])
    hands = patient_hands(seed, patient, anatomy, scores, sides, lesions)
    streams = ImageStreams(
        style=np.random.default_rng([seed, patient_index, 5, _VISIT, visit]),
        look=np.random.default_rng([seed, index, 7, _VISIT, visit]),
        image=np.random.default_rng([seed, index, 99, _VISIT, visit]),
    )
    return draw_image(index, config, patient, hands, streams, patient_course.visit(visit))


def generate_visit_set(
    seed: int, count: int, visits: int, years_apart: float, config: PhantomConfig | None = None
) -> Iterator[PhantomImage]:
    """Every visit of the ``count`` images' patients: visit 1's images, then visit 2's, …"""
    config = config or PhantomConfig()
    for visit in range(1, visits + 1):
        for index in range(count):
            patient_index, _ = study_layout(index, config.hands)
            yield generate_visit_image(
                seed, index, visit, course(seed, patient_index, visits, years_apart, config), config
            )
