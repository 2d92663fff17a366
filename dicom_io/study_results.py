"""The plain structure a study SR is built from: both hands of one study and its progression.

dicom_io knows nothing of the database: the worker chooses, per hand, the image whose scores
stand for it and fills these. A hand lists its ten joints; one the model did not grade, or
did not find, is not assessable (no grades, a reason), and every total says how many joints it
covers. A comparison with an earlier study counts only the joints assessable at both times;
the others are left out and named.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dicom_io.results import ModelInfo

#: the joints of one hand in the order the reports list them (DESIGN.md, Joint labels)
HAND_JOINTS = ("IP", "PIP2", "PIP3", "PIP4", "PIP5", "MCP1", "MCP2", "MCP3", "MCP4", "MCP5")


def hand_labels(side: str) -> tuple[str, ...]:
    return tuple(f"{side}_{joint}" for joint in HAND_JOINTS)


@dataclass(frozen=True)
class ObjectRef:
    """A DICOM object the report refers to: a source image, or an earlier report."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str


@dataclass(frozen=True)
class StudyJoint:
    label: str  #: e.g. ``L_MCP2``
    jsn: int | None  #: None exactly when the joint is not assessable
    erosion: int | None
    reason: str = ""  #: why it is not assessable ("" when it is)

    @property
    def assessable(self) -> bool:
        return self.jsn is not None and self.erosion is not None


@dataclass(frozen=True)
class StudyHand:
    """One hand: the image chosen for it, the other images of it, and its ten joints."""

    side: str  #: ``L`` or ``R``
    source: str  #: SOP Instance UID of the chosen image
    others: tuple[str, ...]  #: other images of the same hand, not used
    choice: str  #: why the chosen one, in one line ("" when there was no other)
    joints: tuple[StudyJoint, ...]

    @property
    def jsn(self) -> int:
        return sum(j.jsn for j in self.joints if j.jsn is not None and j.assessable)

    @property
    def erosion(self) -> int:
        return sum(j.erosion for j in self.joints if j.erosion is not None and j.assessable)

    @property
    def joints_scored(self) -> int:
        return sum(1 for j in self.joints if j.assessable)

    @property
    def not_assessable(self) -> int:
        return len(self.joints) - self.joints_scored


@dataclass(frozen=True)
class JointChange:
    """A joint's change between two studies (later minus earlier)."""

    label: str
    jsn: int
    erosion: int

    @property
    def total(self) -> int:
        return self.jsn + self.erosion


@dataclass(frozen=True)
class Comparison:
    """This study against an earlier one of the same patient, over the joints assessable at
    both times; rates are points per year between the Study Dates."""

    against: str  #: ``previous`` or ``first``
    prior_study_instance_uid: str
    prior_study_date: dt.date
    prior_report: ObjectRef  #: the earlier study's report (its study SR)
    years: float  #: between the Study Dates (days / 365.25)
    joints: tuple[JointChange, ...]  #: the joints compared
    left_out: tuple[str, ...]  #: labels not assessable at either time

    @property
    def jsn(self) -> int:
        return sum(j.jsn for j in self.joints)

    @property
    def erosion(self) -> int:
        return sum(j.erosion for j in self.joints)

    @property
    def total(self) -> int:
        return self.jsn + self.erosion

    def per_year(self, change: int) -> float | None:
        """``change`` in points per year; None when the studies share a date."""
        return change / self.years if self.years > 0 else None


@dataclass(frozen=True)
class StudyResult:
    """Everything a study SR says."""

    study_instance_uid: str
    study_date: dt.date | None
    version: int  #: 1 for the first report of the study, n+1 for one that replaces n
    model: ModelInfo
    images: tuple[ObjectRef, ...]  #: every source image (scored by ``model``)
    hands: tuple[StudyHand, ...]  #: in side order (L, R)
    comparisons: tuple[Comparison, ...] = ()  #: since the previous study, since the first
    replaces: ObjectRef | None = None  #: the report of the version this one replaces
    left_out_images: int = 0  #: images of the study not scored by ``model`` (failed, skipped)

    @property
    def jsn(self) -> int:
        return sum(h.jsn for h in self.hands)

    @property
    def erosion(self) -> int:
        return sum(h.erosion for h in self.hands)

    @property
    def joints_scored(self) -> int:
        return sum(h.joints_scored for h in self.hands)

    @property
    def not_assessable(self) -> int:
        return sum(h.not_assessable for h in self.hands)
