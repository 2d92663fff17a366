"""What a study report says, as pure functions: the choice between images of the same hand,
each hand's ten joints, and the report's JSON (``study_reports.content``) to and from the
:class:`~dicom_io.study_results.StudyResult` the study SR is built from.

Duplicates of a hand (two images of the left hand in one study) are chosen between
deterministically: the image with the most assessable joints of that hand, then the latest
received, then the smallest SOP Instance UID; the report names the others and says why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dicom_io.results import ModelInfo
from dicom_io.study_results import (
    HAND_JOINTS,
    ObjectRef,
    StudyHand,
    StudyJoint,
    StudyResult,
    hand_labels,
)
from worker.jobs.progression import (
    TimePoint,
    comparison_from_json,
    comparison_json,
    ref_from_json,
    ref_json,
)

SIDE_NAMES = {"L": "left", "R": "right"}
NOT_FOUND = "not found"


@dataclass(frozen=True)
class ScoredImage:
    """One image of the study as the active model scored it."""

    ref: ObjectRef
    received_at: dt.datetime
    #: label -> (JSN, erosion), or (None, None) with a reason where not assessable
    joints: Mapping[str, tuple[int | None, int | None, str]]
    #: why an expected joint has no row ("not imaged", "not found"), from the score
    missing: Mapping[str, str] = field(default_factory=dict)

    def sides(self) -> tuple[str, ...]:
        return tuple(s for s in ("L", "R") if any(k.startswith(f"{s}_") for k in self.joints))

    def assessable(self, side: str) -> int:
        return sum(
            1
            for k, (jsn, _, _) in self.joints.items()
            if k.startswith(f"{side}_") and jsn is not None
        )


def _rank(side: str, image: ScoredImage) -> tuple[int, float, str]:
    return (-image.assessable(side), -image.received_at.timestamp(), image.ref.sop_instance_uid)


def choose(side: str, images: Sequence[ScoredImage]) -> tuple[ScoredImage, list[ScoredImage], str]:
    """The image that stands for hand ``side``, the others of that hand, and why (one line;
    "" when there is no other)."""
    ranked = sorted((i for i in images if side in i.sides()), key=lambda i: _rank(side, i))
    chosen, others = ranked[0], ranked[1:]
    if not others:
        return chosen, [], ""
    runner = others[0]
    if chosen.assessable(side) != runner.assessable(side):
        why = f"most assessable joints ({chosen.assessable(side)} of {len(HAND_JOINTS)})"
    elif chosen.received_at != runner.received_at:
        why = "as many assessable joints; received last"
    else:
        why = "as many assessable joints, received at once; first SOP Instance UID"
    return (
        chosen,
        others,
        f"{len(ranked)} images of the {SIDE_NAMES[side]} hand: "
        f"{chosen.ref.sop_instance_uid} chosen ({why})",
    )


def hand(side: str, images: Sequence[ScoredImage]) -> StudyHand:
    """Hand ``side`` from its chosen image: ten joints, each graded or not assessable."""
    chosen, others, why = choose(side, images)
    joints = []
    for label in hand_labels(side):
        jsn, erosion, reason = chosen.joints.get(
            label, (None, None, chosen.missing.get(label, NOT_FOUND))
        )
        graded = jsn is not None and erosion is not None
        joints.append(StudyJoint(label, jsn, erosion, "" if graded else reason or NOT_FOUND))
    return StudyHand(
        side=side,
        source=chosen.ref.sop_instance_uid,
        others=tuple(sorted(o.ref.sop_instance_uid for o in others)),
        choice=why,
        joints=tuple(joints),
    )


def hands(images: Sequence[ScoredImage]) -> tuple[StudyHand, ...]:
    sides = {s for i in images for s in i.sides()}
    return tuple(hand(side, images) for side in ("L", "R") if side in sides)


def _totals(jsn: int, erosion: int, scored: int, not_assessable: int) -> dict[str, int]:
    return {
        "jsn": jsn,
        "erosion": erosion,
        "total": jsn + erosion,
        "joints_scored": scored,
        "not_assessable": not_assessable,
    }


def content(result: StudyResult, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The report's JSON: what the SR says, and ``extra`` (the images left out and why)."""
    return {
        "study_instance_uid": result.study_instance_uid,
        "study_date": result.study_date.isoformat() if result.study_date else None,
        "version": result.version,
        "model": {
            "name": result.model.name,
            "version": result.model.version,
            "device_uid": result.model.device_uid,
        },
        "images": [ref_json(i) for i in result.images],
        "hands": {
            h.side: {
                "source": h.source,
                "others": list(h.others),
                "choice": h.choice,
                **_totals(h.jsn, h.erosion, h.joints_scored, h.not_assessable),
                "joints": {
                    j.label: {
                        "jsn": j.jsn,
                        "erosion": j.erosion,
                        "assessable": j.assessable,
                        "reason": j.reason,
                        "source": h.source,
                    }
                    for j in h.joints
                },
            }
            for h in result.hands
        },
        "totals": _totals(result.jsn, result.erosion, result.joints_scored, result.not_assessable),
        "progression": {c.against: comparison_json(c) for c in result.comparisons} or None,
        "replaces": ref_json(result.replaces) if result.replaces else None,
        "left_out_images": result.left_out_images,
        **extra,
    }


def _joint(label: str, data: Mapping[str, Any]) -> StudyJoint:
    return StudyJoint(label, data["jsn"], data["erosion"], data["reason"])


def study_result(data: Mapping[str, Any]) -> StudyResult:
    """The :class:`StudyResult` a report's JSON describes (what its SR was built from)."""
    model = data["model"]
    progression = data.get("progression") or {}
    return StudyResult(
        study_instance_uid=data["study_instance_uid"],
        study_date=dt.date.fromisoformat(data["study_date"]) if data["study_date"] else None,
        version=int(data["version"]),
        model=ModelInfo(model["name"], model["version"], model["device_uid"]),
        images=tuple(ref_from_json(i) for i in data["images"]),
        hands=tuple(
            StudyHand(
                side=side,
                source=h["source"],
                others=tuple(h["others"]),
                choice=h["choice"],
                joints=tuple(_joint(label, h["joints"][label]) for label in hand_labels(side)),
            )
            for side, h in sorted(data["hands"].items())
        ),
        comparisons=tuple(
            comparison_from_json(progression[k]) for k in ("previous", "first") if k in progression
        ),
        replaces=ref_from_json(data["replaces"]) if data.get("replaces") else None,
        left_out_images=int(data.get("left_out_images", 0)),
    )


def time_point(data: Mapping[str, Any], report: ObjectRef) -> TimePoint | None:
    """A report as a point of the patient's progression (None: its study has no date)."""
    if not data.get("study_date"):
        return None
    grades: dict[str, tuple[int, int] | None] = {}
    for h in data["hands"].values():
        for label, j in h["joints"].items():
            graded = j["assessable"] and j["jsn"] is not None and j["erosion"] is not None
            grades[label] = (int(j["jsn"]), int(j["erosion"])) if graded else None
    return TimePoint(
        data["study_instance_uid"], dt.date.fromisoformat(data["study_date"]), report, grades
    )
