"""The audit queries, shared by the HTTP API, the dashboard and ``rascore scores|audit``.

Plain functions of a session returning JSON-ready dicts. Every query that returns patient data
is written to the audit trail by its caller with :func:`record_query`, naming who asked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from sqlalchemy import Row, Select, exists, func, select
from sqlalchemy.orm import Session, selectinload

from worker.db.models import (
    AuditEvent,
    AuditEventType,
    Delivery,
    ImageScoreRow,
    Instance,
    InstanceStatus,
    Job,
    JobAttempt,
    Reception,
    ResultObject,
    Study,
)

MAX_PAGE = 500
_S = TypeVar("_S", bound=Select)  #: a select of any columns, filtered in place


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class InstanceFilter:
    patient_id: str | None = None
    accession_number: str | None = None
    study_date_from: dt.date | None = None
    study_date_to: dt.date | None = None
    status: InstanceStatus | None = None
    model_version: str | None = None
    calling_ae: str | None = None

    def apply(self, query: _S) -> _S:
        if self.patient_id is not None:
            query = query.where(Study.patient_id == self.patient_id)
        if self.accession_number is not None:
            query = query.where(Study.accession_number == self.accession_number)
        if self.study_date_from is not None:
            query = query.where(Study.study_date >= self.study_date_from)
        if self.study_date_to is not None:
            query = query.where(Study.study_date <= self.study_date_to)
        if self.status is not None:
            query = query.where(Instance.status == self.status)
        if self.model_version is not None:
            query = query.where(
                exists().where(
                    ImageScoreRow.instance_id == Instance.id,
                    ImageScoreRow.model_version == self.model_version,
                )
            )
        if self.calling_ae is not None:
            query = query.where(
                exists().where(
                    Reception.instance_id == Instance.id,
                    Reception.calling_ae_title == self.calling_ae,
                )
            )
        return query

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) for k, v in asdict(self).items() if v is not None}


def _latest_scores(session: Session, ids: list[int]) -> dict[int, ImageScoreRow]:
    latest: dict[int, ImageScoreRow] = {}
    for score in session.scalars(
        select(ImageScoreRow)
        .where(ImageScoreRow.instance_id.in_(ids))
        .order_by(ImageScoreRow.scored_at)
    ):
        latest[score.instance_id] = score
    return latest


def _instance_row(instance: Instance, score: ImageScoreRow | None) -> dict[str, Any]:
    study = instance.study
    return {
        "id": instance.id,
        "sop_instance_uid": instance.sop_instance_uid,
        "study_instance_uid": study.study_instance_uid,
        "patient_id": study.patient_id,
        "accession_number": study.accession_number,
        "study_date": _iso(study.study_date),
        "modality": instance.modality,
        "body_part": instance.body_part,
        "laterality": instance.laterality,
        "status": instance.status.value,
        "reason": instance.reason,
        "received_at": _iso(instance.received_at),
        # totals over the assessable joints: joints_scored says how many
        "total_jsn": score.total_jsn if score else None,
        "total_erosion": score.total_erosion if score else None,
        "joints_scored": score.joints_scored if score else None,
        "joints_expected": _joints_expected(score) if score else None,
        "model_version": score.model_version if score else None,
    }


def list_instances(
    session: Session, where: InstanceFilter, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """A page of instances, newest first, with their latest totals."""
    limit = max(1, min(limit, MAX_PAGE))
    base = where.apply(select(Instance).join(Study))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    instances = session.scalars(
        base.options(selectinload(Instance.study))
        .order_by(Instance.received_at.desc(), Instance.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    latest = _latest_scores(session, [i.id for i in instances])
    return {
        "items": [_instance_row(i, latest.get(i.id)) for i in instances],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def list_studies(
    session: Session, where: InstanceFilter, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    limit = max(1, min(limit, MAX_PAGE))
    ids = where.apply(select(Study.id).join(Instance)).distinct()
    query = select(Study).where(Study.id.in_(ids))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    studies = session.scalars(
        query.order_by(Study.study_date.desc(), Study.id.desc()).limit(limit).offset(offset)
    ).all()
    return {
        "items": [
            {
                "id": s.id,
                "study_instance_uid": s.study_instance_uid,
                "patient_id": s.patient_id,
                "accession_number": s.accession_number,
                "study_date": _iso(s.study_date),
                "instances": len(s.instances),
            }
            for s in studies
        ],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def _joints_expected(score: ImageScoreRow) -> int:
    """Ten per hand found (DESIGN.md, Joint labels)."""
    return 10 * len(score.hands or {})


def score_dict(score: ImageScoreRow) -> dict[str, Any]:
    """A score with its joints; a joint that is not assessable has null grades and its reason,
    and the totals (over the assessable joints) say how many joints they cover."""
    missing = score.missing.get("labels", [])
    return {
        "id": score.id,
        "job_id": score.job_id,
        "model": {
            "name": score.model_name,
            "version": score.model_version,
            "device_uid": score.model_device_uid,
        },
        "status": score.status,
        "scored_at": _iso(score.scored_at),
        "totals": {
            "jsn": score.total_jsn,
            "erosion": score.total_erosion,
            "joints_scored": score.joints_scored,
            "joints_expected": _joints_expected(score),
        },
        "hands": score.hands,
        "missing": missing,
        "missing_reasons": {
            label: score.missing.get("reasons", {}).get(label, "not found") for label in missing
        },
        "pixel_spacing_mm": score.pixel_spacing_mm,
        "pixel_spacing_assumed": score.pixel_spacing_assumed,
        "timings_ms": score.timings_ms,
        "joints": [
            {
                "label": j.label,
                "box": [j.box_x, j.box_y, j.box_w, j.box_h],
                "jsn": j.jsn if j.assessable else None,
                "erosion": j.erosion if j.assessable else None,
                "assessable": j.assessable,
                "reason": None if j.assessable else j.reason,
                "jsn_probs": j.jsn_probs["p"],
                "erosion_probs": j.erosion_probs["p"],
                "found_by": j.found_by,
            }
            for j in score.joints
        ],
    }


def instance_detail(session: Session, instance_id: int) -> dict[str, Any] | None:
    """Everything about one instance: who sent it, its jobs, every score, results, deliveries."""
    instance = session.get(Instance, instance_id)
    if instance is None:
        return None
    scores = session.scalars(
        select(ImageScoreRow)
        .where(ImageScoreRow.instance_id == instance_id)
        .options(selectinload(ImageScoreRow.joints))
        .order_by(ImageScoreRow.scored_at)
    ).all()
    out = _instance_row(instance, scores[-1] if scores else None)
    out["sha256"] = instance.sha256
    out["transfer_syntax"] = instance.transfer_syntax
    out["receptions"] = [
        {
            "calling_ae_title": r.calling_ae_title,
            "calling_host": r.calling_host,
            "received_at": _iso(r.received_at),
            "duplicate": r.duplicate,
        }
        for r in instance.receptions
    ]
    out["jobs"] = [
        {
            "id": job.id,
            "model_version": job.model_version,
            "status": job.status.value,
            "reason": job.reason,
            "created_at": _iso(job.created_at),
            "finished_at": _iso(job.finished_at),
            "attempts": [
                {
                    "worker": a.worker,
                    "started_at": _iso(a.started_at),
                    "finished_at": _iso(a.finished_at),
                    "outcome": a.outcome,
                    "error": a.error,
                }
                for a in job.attempts
            ],
            "results": [
                {
                    "kind": r.kind,
                    "sop_class_uid": r.sop_class_uid,
                    "sop_instance_uid": r.sop_instance_uid,
                    "deliveries": [
                        {
                            "id": d.id,
                            "destination": d.destination,
                            "status": d.status.value,
                            "attempts": d.attempts,
                            "last_status": d.last_status,
                            "last_error": d.last_error,
                            "sent_at": _iso(d.sent_at),
                        }
                        for d in r.deliveries
                    ],
                }
                for r in job.results
            ],
        }
        for job in instance.jobs
    ]
    out["scores"] = [score_dict(s) for s in scores]
    return out


def latest_overlay_key(session: Session, instance_id: int) -> str | None:
    """The store key of the overlay SC of the instance's latest scoring, if one was made."""
    return session.scalar(
        select(ResultObject.store_key)
        .join(Job)
        .where(Job.instance_id == instance_id, ResultObject.kind == "sc")
        .order_by(ResultObject.id.desc())
        .limit(1)
    )


def _scores_query(where: InstanceFilter) -> Select[ImageScoreRow, Instance, Study]:
    return where.apply(
        select(ImageScoreRow, Instance, Study)
        .join(Instance, ImageScoreRow.instance_id == Instance.id)
        .join(Study, Instance.study_id == Study.id)
    ).options(selectinload(ImageScoreRow.joints))


def scores(
    session: Session, where: InstanceFilter, limit: int = MAX_PAGE, offset: int = 0
) -> list[dict[str, Any]]:
    """The scores of the matching instances with their joints, newest first, in one query
    (the joints come in a second, for the whole page)."""
    rows = session.execute(
        _scores_query(where)
        .order_by(ImageScoreRow.scored_at.desc(), ImageScoreRow.id.desc())
        .limit(max(1, min(limit, MAX_PAGE)))
        .offset(offset)
    ).all()
    return _score_rows(rows)


def export_scores_page(
    session: Session, where: InstanceFilter, before_id: int | None, limit: int = MAX_PAGE
) -> list[dict[str, Any]]:
    """A page of an export: the matching scores with an id below ``before_id`` (None: from
    the newest), highest id first. Keyset paging: each page costs the same, with no OFFSET
    to skip and no COUNT; the next page starts below the last ``id``."""
    query = _scores_query(where)
    if before_id is not None:
        query = query.where(ImageScoreRow.id < before_id)
    rows = session.execute(query.order_by(ImageScoreRow.id.desc()).limit(limit)).all()
    return _score_rows(rows)


def _score_rows(rows: Sequence[Row[ImageScoreRow, Instance, Study]]) -> list[dict[str, Any]]:
    return [
        {
            "instance_id": instance.id,
            "sop_instance_uid": instance.sop_instance_uid,
            "patient_id": study.patient_id,
            "study_date": _iso(study.study_date),
            "accession_number": study.accession_number,
            "laterality": instance.laterality,
            **score_dict(score),
        }
        for score, instance, study in rows
    ]


def scores_for_patient(session: Session, patient_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """Every score of one patient's images, newest first: the joint history an auditor reads."""
    return scores(session, InstanceFilter(patient_id=patient_id), limit)


@dataclass(frozen=True)
class AuditFilter:
    event: str | None = None
    actor: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    instance_id: int | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.event is not None:
            query = query.where(AuditEvent.event == self.event)
        if self.actor is not None:
            query = query.where(AuditEvent.actor == self.actor)
        if self.since is not None:
            query = query.where(AuditEvent.at >= self.since)
        if self.until is not None:
            query = query.where(AuditEvent.at <= self.until)
        if self.instance_id is not None:
            query = query.where(AuditEvent.instance_id == self.instance_id)
        return query

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) for k, v in asdict(self).items() if v is not None}


def audit_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": _iso(event.at),
        "event": event.event,
        "actor": event.actor,
        "instance_id": event.instance_id,
        "detail": event.detail,
    }


def export_audit_page(
    session: Session, where: AuditFilter, before_id: int | None, limit: int = MAX_PAGE
) -> list[dict[str, Any]]:
    """A page of the audit export, newest first, keyset-paged like :func:`export_scores_page`."""
    query = where.apply(select(AuditEvent))
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return [
        audit_dict(e) for e in session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit))
    ]


def list_audit(
    session: Session, where: AuditFilter, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    limit = max(1, min(limit, MAX_PAGE))
    base = where.apply(select(AuditEvent))
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    events = session.scalars(base.order_by(AuditEvent.id.desc()).limit(limit).offset(offset)).all()
    return {
        "items": [audit_dict(e) for e in events],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def failed_builds() -> Select[Any]:
    """The ids of the ``build`` attempts that failed and are each their job's latest build
    (a resend that builds the job again takes it off the list)."""
    latest = select(func.max(JobAttempt.id)).where(JobAttempt.task == "build")
    return select(JobAttempt.id).where(
        JobAttempt.id.in_(latest.group_by(JobAttempt.job_id)), JobAttempt.outcome == "failed"
    )


def failures(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """Failed instances, failed builds and failed deliveries, newest first, each with its
    one-line reason (``<reason code>: <message>`` for scoring and builds)."""
    failed = session.scalars(
        select(Instance)
        .where(Instance.status == InstanceStatus.FAILED)
        .options(selectinload(Instance.study))
        .order_by(Instance.received_at.desc())
        .limit(limit)
    ).all()
    out = [{"kind": "scoring", **_instance_row(i, None)} for i in failed]
    builds = session.execute(
        select(JobAttempt, Job)
        .join(Job, JobAttempt.job_id == Job.id)
        .where(JobAttempt.id.in_(failed_builds()))
        .options(selectinload(Job.instance).selectinload(Instance.study))
        .order_by(JobAttempt.id.desc())
        .limit(limit)
    ).all()
    for attempt, job in builds:  # the scores stand; the result objects could not be made
        out.append(
            {
                "kind": "build",
                **_instance_row(job.instance, None),
                "job_id": job.id,
                "reason": attempt.error,
                "failed_at": _iso(attempt.finished_at),
            }
        )
    stuck = session.execute(
        select(Delivery, ResultObject, Job)
        .join(ResultObject, Delivery.result_id == ResultObject.id)
        .join(Job, ResultObject.job_id == Job.id)
        .where(Delivery.status != "sent", Delivery.attempts > 0)
        .order_by(Delivery.id.desc())
        .limit(limit)
    ).all()
    for delivery, result, job in stuck:
        out.append(
            {
                "kind": "delivery",
                "id": job.instance_id,
                "delivery_id": delivery.id,
                "result": result.kind,
                "destination": delivery.destination,
                "status": delivery.status.value,
                "attempts": delivery.attempts,
                "reason": delivery.last_error,
            }
        )
    return out


def record_query(
    session: Session,
    actor: str,
    what: str,
    params: dict[str, Any],
    instance_id: int | None = None,
) -> None:
    """Who looked at patient data, and what they asked for (append-only audit).
    ``instance_id`` only for an instance known to exist (the row refers to it)."""
    session.add(
        AuditEvent(
            event=AuditEventType.QUERIED,
            actor=actor,
            instance_id=instance_id,
            detail={"query": what, **{k: v for k, v in params.items() if v is not None}},
        )
    )
