"""Progression: a patient's joint damage over their studies, as pure functions.

A study is a :class:`TimePoint`: its Study Date, its report, and per joint label the grades
(JSN, erosion) or None where the joint was not assessable (a joint of a hand not imaged is
simply absent). Against an earlier study the change is taken over the joints assessable at
both times only (a total over 18 joints is not compared with one over 20); the others are
left out and named. Rates are points per year: change / years between the Study Dates
(days / 365.25), none when the dates are equal.

A study is compared with the previous study and with the first (the patient's earliest), both
strictly earlier by Study Date; a study without a date is not compared. The caller gives only
reports scored by the same model as the current one, so both time points are the same
model's reading.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dicom_io.study_results import Comparison, JointChange, ObjectRef

DAYS_PER_YEAR = 365.25
_ORDER = {f"{side}_{j}": n for n, (side, j) in enumerate(
    (s, j) for s in "LR"
    for j in ("IP", "PIP2", "PIP3", "PIP4", "PIP5", "MCP1", "MCP2", "MCP3", "MCP4", "MCP5")
)}  # fmt: skip


@dataclass(frozen=True)
class TimePoint:
    """One assessed study of the patient."""

    study_instance_uid: str
    study_date: dt.date
    report: ObjectRef  #: its study SR
    #: label -> (JSN, erosion), or None where not assessable; hands not imaged are absent
    grades: Mapping[str, tuple[int, int] | None]


def _label_order(label: str) -> tuple[int, str]:
    return _ORDER.get(label, len(_ORDER)), label


def years_between(earlier: dt.date, later: dt.date) -> float:
    return (later - earlier).days / DAYS_PER_YEAR


def compare(earlier: TimePoint, later: TimePoint, against: str) -> Comparison:
    """``later`` against ``earlier``: per joint assessable at both times, the change (later
    minus earlier); every other joint either study lists is left out."""
    labels = sorted(set(earlier.grades) | set(later.grades), key=_label_order)
    changes: list[JointChange] = []
    left_out: list[str] = []
    for label in labels:
        before, after = earlier.grades.get(label), later.grades.get(label)
        if before is None or after is None:
            left_out.append(label)
        else:
            changes.append(JointChange(label, after[0] - before[0], after[1] - before[1]))
    return Comparison(
        against=against,
        prior_study_instance_uid=earlier.study_instance_uid,
        prior_study_date=earlier.study_date,
        prior_report=earlier.report,
        years=years_between(earlier.study_date, later.study_date),
        joints=tuple(changes),
        left_out=tuple(left_out),
    )


def comparisons(current: TimePoint, others: Sequence[TimePoint]) -> tuple[Comparison, ...]:
    """Since the previous study and since the first (both strictly earlier by Study Date;
    ties broken by Study Instance UID); none when the patient has no earlier study."""
    earlier = sorted(
        (p for p in others if p.study_date < current.study_date),
        key=lambda p: (p.study_date, p.study_instance_uid),
    )
    if not earlier:
        return ()
    return (compare(earlier[-1], current, "previous"), compare(earlier[0], current, "first"))


def _rate(c: Comparison, change: int) -> float | None:
    rate = c.per_year(change)
    return None if rate is None else round(rate, 6)


def comparison_json(c: Comparison) -> dict[str, Any]:
    """What the study report's JSON says of a comparison (rates rounded to 6 decimals)."""
    return {
        "against": c.against,
        "prior_study_instance_uid": c.prior_study_instance_uid,
        "prior_study_date": c.prior_study_date.isoformat(),
        "prior_report": ref_json(c.prior_report),
        "years": c.years,
        "jsn": {"change": c.jsn, "per_year": _rate(c, c.jsn)},
        "erosion": {"change": c.erosion, "per_year": _rate(c, c.erosion)},
        "total": {"change": c.total, "per_year": _rate(c, c.total)},
        "joints_compared": len(c.joints),
        "joints_left_out": len(c.left_out),
        "left_out": list(c.left_out),
        "joints": {
            j.label: {
                "jsn": j.jsn,
                "erosion": j.erosion,
                "total": j.total,
                "jsn_per_year": _rate(c, j.jsn),
                "erosion_per_year": _rate(c, j.erosion),
            }
            for j in c.joints
        },
    }


def comparison_from_json(data: Mapping[str, Any]) -> Comparison:
    return Comparison(
        against=str(data["against"]),
        prior_study_instance_uid=str(data["prior_study_instance_uid"]),
        prior_study_date=dt.date.fromisoformat(data["prior_study_date"]),
        prior_report=ref_from_json(data["prior_report"]),
        years=float(data["years"]),
        joints=tuple(
            JointChange(label, int(j["jsn"]), int(j["erosion"]))
            for label, j in data["joints"].items()
        ),
        left_out=tuple(data["left_out"]),
    )


def ref_json(ref: ObjectRef) -> dict[str, str]:
    return {
        "sop_class_uid": ref.sop_class_uid,
        "sop_instance_uid": ref.sop_instance_uid,
        "series_instance_uid": ref.series_instance_uid,
        "study_instance_uid": ref.study_instance_uid,
    }


def ref_from_json(data: Mapping[str, str]) -> ObjectRef:
    return ObjectRef(
        data["sop_class_uid"],
        data["sop_instance_uid"],
        data["series_instance_uid"],
        data["study_instance_uid"],
    )
