"""A patient's studies over time, read from the study reports (the API's timeline, the
dashboard's patient page and the progression CSV share it).

One entry per study, in Study Date order: the newest report's totals per hand and overall,
its model, its progression since the previous and the first study (as the assembly computed
it: over the joints assessable at both times, same model only), and every study SR the
study has had, newest first. A study not assembled yet is listed as pending.

Only the newest report's JSON is read (older versions only by their UIDs), so a patient with
many re-assembled studies costs one content per study.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, select, tuple_
from sqlalchemy.orm import Session

from worker.db.models import Instance, Study, StudyReport

#: what a comparison of the report keeps in the timeline (its per-joint changes stay in the SR)
_COMPARISON_KEYS = (
    "against", "prior_study_instance_uid", "prior_study_date", "years", "jsn", "erosion",
    "total", "joints_compared", "joints_left_out", "left_out",
)  # fmt: skip
_TOTAL_KEYS = ("jsn", "erosion", "total", "joints_scored", "not_assessable")
PATIENTS_PER_PAGE = 50


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _totals(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data.get(k) for k in _TOTAL_KEYS}


def _status(study: Study) -> str:
    """assembled; pending (not assembled yet); or no_report (assembled, but no hand of it was
    scored by the active model)."""
    if study.report_version > 0:
        return "assembled"
    covered = study.assembled_through is not None and study.assembled_through == study.last_image_at
    return "no_report" if covered else "pending"


def _progression(content: dict[str, Any]) -> dict[str, Any] | None:
    found = content.get("progression") or {}
    out = {
        against: {k: comparison.get(k) for k in _COMPARISON_KEYS}
        for against, comparison in found.items()
        if against in ("previous", "first")
    }
    return out or None


def _entry(
    study: Study,
    content: dict[str, Any] | None,
    srs: list[dict[str, Any]],
    images: list[dict[str, Any]],
) -> dict[str, Any]:
    status = _status(study)
    entry: dict[str, Any] = {
        "study_instance_uid": study.study_instance_uid,
        "study_date": _iso(study.study_date),
        "accession_number": study.accession_number,
        "status": status,
        # a late image re-opened it: the report shown is the last one, a new one is coming
        "update_pending": status == "assembled" and study.assembled_through != study.last_image_at,
        "report_version": study.report_version or None,
        "model_version": None,
        "totals": None,
        "hands": {},
        "progression": None,
        "study_srs": srs,
        "images": images,
    }
    if content is not None:
        entry["model_version"] = (content.get("model") or {}).get("version")
        entry["totals"] = _totals(content.get("totals") or {})
        entry["hands"] = {s: _totals(h) for s, h in sorted((content.get("hands") or {}).items())}
        entry["progression"] = _progression(content)
        entry["assembled_at"] = _iso(study.assembled_at)
    return entry


def _order(study: Study) -> tuple[int, str, str]:
    """Study Date order; a study without a date last (it is never compared)."""
    if study.study_date is None:
        return 1, "", study.study_instance_uid
    return 0, study.study_date.isoformat(), study.study_instance_uid


def _entries(session: Session, studies: Sequence[Study]) -> list[dict[str, Any]]:
    """The timeline entries of ``studies``: four queries whatever their number."""
    ids = [s.id for s in studies]
    srs: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in session.execute(
        select(
            StudyReport.study_id, StudyReport.version, StudyReport.sop_instance_uid,
            StudyReport.series_instance_uid, StudyReport.model_version, StudyReport.created_at,
        )
        .where(StudyReport.study_id.in_(ids))
        .order_by(StudyReport.study_id, StudyReport.version.desc())
    ):  # fmt: skip
        srs[row.study_id].append({
            "version": row.version, "sop_instance_uid": row.sop_instance_uid,
            "series_instance_uid": row.series_instance_uid,
            "model_version": row.model_version, "created_at": _iso(row.created_at),
        })  # fmt: skip
    newest: dict[int, dict[str, Any]] = {
        study_id: content
        for study_id, content in session.execute(
            select(StudyReport.study_id, StudyReport.content)
            .join(Study, and_(Study.id == StudyReport.study_id,
                              Study.report_version == StudyReport.version))
            .where(StudyReport.study_id.in_(ids))
        )
    }  # fmt: skip
    images: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for image in session.execute(
        select(Instance.study_id, Instance.id, Instance.sop_instance_uid, Instance.laterality,
               Instance.status)
        .where(Instance.study_id.in_(ids))
        .order_by(Instance.study_id, Instance.id)
    ):  # fmt: skip
        images[image.study_id].append({
            "instance_id": image.id, "sop_instance_uid": image.sop_instance_uid,
            "laterality": image.laterality, "status": str(image.status.value),
        })  # fmt: skip
    return [
        _entry(s, newest.get(s.id), srs.get(s.id, []), images.get(s.id, []))
        for s in sorted(studies, key=_order)
    ]


def issuers(session: Session, patient_id: str) -> list[str]:
    """The issuers within which ``patient_id`` names a patient the node has studies of (none
    for "": studies without a Patient ID are no one patient's)."""
    if not patient_id:
        return []
    return sorted(
        session.scalars(
            select(Study.issuer_of_patient_id).where(Study.patient_id == patient_id).distinct()
        )
    )


def patient_timeline(session: Session, patient_id: str, issuer: str) -> dict[str, Any]:
    """The timeline of one patient (``patient_id`` within ``issuer``; "" for none given by
    the sender): studies in Study Date order, and the model versions their reports used."""
    studies = session.scalars(
        select(Study).where(Study.patient_id == patient_id, Study.issuer_of_patient_id == issuer)
    ).all()
    entries = _entries(session, studies)
    models = sorted({e["model_version"] for e in entries if e["model_version"]})
    return {
        "patient_id": patient_id,
        "issuer_of_patient_id": issuer,
        "studies": entries,
        "model_versions": models,
        "assembled": sum(e["status"] == "assembled" for e in entries),
        "pending": sum(e["status"] == "pending" for e in entries),
    }


def progression_page(
    session: Session, since: dt.date | None, after: tuple[str, str] | None
) -> list[dict[str, Any]]:
    """One page of the progression export: the timelines of up to ``PATIENTS_PER_PAGE``
    patients with a report (keyset on issuer and Patient ID, after ``after``), each only with
    its assembled studies dated on or after ``since``."""
    query = select(Study.issuer_of_patient_id, Study.patient_id).where(
        Study.report_version > 0, Study.patient_id != ""
    )
    if since is not None:
        query = query.where(Study.study_date >= since)
    if after is not None:
        query = query.where(tuple_(Study.issuer_of_patient_id, Study.patient_id) > tuple_(*after))
    keys = session.execute(
        query.distinct()
        .order_by(Study.issuer_of_patient_id, Study.patient_id)
        .limit(PATIENTS_PER_PAGE)
    ).all()
    page = []
    for issuer, patient_id in keys:
        timeline = patient_timeline(session, patient_id, issuer)
        timeline["studies"] = [
            s for s in timeline["studies"]
            if s["status"] == "assembled"
            and (since is None or (s["study_date"] is not None and s["study_date"] >= _iso(since)))
        ]  # fmt: skip
        page.append(timeline)
    return page
