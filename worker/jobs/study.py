"""Study assembly: once a study has been quiet for ``RASCORE_STUDY_QUIET_S`` and each of its
images is scored, failed or skipped, its hands are put together in one report and one study
SR, sent through the outbox like the per-image results.

Only images scored by the active model count (:func:`worker.models_home.
active_model_version`): an image scored by another model only, failed or skipped is left out,
and the report says how many. Per hand, the image with the most assessable joints stands for
it (:mod:`worker.jobs.study_content`). Against the patient's earlier studies (same Patient ID
within the same issuer, strictly earlier Study Date, reported by the same model) the report
carries the progression (:mod:`worker.jobs.progression`).

A late image re-opens the study (the receiver sets ``last_image_at``): its next assembly makes
version n+1, whose SR names version n's as Predecessor Document. A study with a previous one
also gets, per hand image, an overlay SC of the joints that changed (:mod:`worker.jobs.
study_overlay`). A report of an earlier
study re-opens the patient's later studies, so their comparison takes it in.

Before a study is assembled its priors are asked of the PACS (:func:`worker.jobs.priors.
request_priors`); while they are being fetched the study waits. The sweeper
(:mod:`worker.node.sweeper`) calls :func:`assemble_due` once a sweep. The
assembly is idempotent: the SR's UIDs derive from the study, the version and the model, and
a report is recorded only if the study did not change meanwhile (else the next sweep tries
again).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from pydicom import Dataset
from pydicom.uid import Comprehensive3DSRStorage, generate_uid
from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dicom_io.reading import read_dicom
from dicom_io.results import ModelInfo
from dicom_io.sr.study import build_study_sr
from dicom_io.study_results import ObjectRef, StudyResult
from worker.db.engine import session_scope
from worker.db.models import (
    AuditEvent,
    AuditEventType,
    Instance,
    InstanceStatus,
    JobStatus,
    ResultObject,
    Study,
    StudyReport,
    utcnow,
)
from worker.jobs.outbox import ensure_object_deliveries
from worker.jobs.priors import request_priors
from worker.jobs.progression import TimePoint, comparisons
from worker.jobs.study_content import ScoredImage, content, hands, time_point
from worker.jobs.study_overlay import study_overlays
from worker.models_home import active_model_version
from worker.node.store import Store
from worker.settings import Settings

log = logging.getLogger(__name__)

BATCH = 50
STUDY_SR_KIND = "study"
_WAITING = (InstanceStatus.RECEIVED, InstanceStatus.QUEUED)
#: how long a study waits for the patient's earlier studies to be reported first (at least)
EARLIER_WAIT_S = 600.0


def due_studies(
    session: Session, now: dt.datetime, quiet_s: float, limit: int = BATCH
) -> list[int]:
    """Studies quiet for ``quiet_s`` whose newest image their report does not cover, and none
    of whose images waits to be scored."""
    waiting = exists().where(Instance.study_id == Study.id, Instance.status.in_(_WAITING))
    query = (
        select(Study.id)
        .where(
            Study.last_image_at.is_not(None),
            Study.last_image_at <= now - dt.timedelta(seconds=quiet_s),
            or_(Study.assembled_through.is_(None), Study.assembled_through != Study.last_image_at),
            ~waiting,
        )
        .order_by(Study.last_image_at)
        .limit(limit)
    )
    return list(session.scalars(query))


@dataclass(frozen=True)
class _Plan:
    study_id: int
    last_image_at: dt.datetime
    version: int
    result: StudyResult | None  #: None: no image of the study scored by the active model
    sources: dict[str, str]  #: SOP Instance UID -> store key
    left_out: list[dict[str, str]]
    priors_other_model: int


def assemble_due(
    settings: Settings,
    now: dt.datetime | None = None,
    on_due: Callable[[list[int]], object] = lambda _: None,
) -> int:
    """Assemble the studies due; returns how many reports were made. ``on_due`` gets the ids
    of the deliveries ready to go."""
    now = now or utcnow()
    with session_scope(settings.effective_database_url) as session:
        study_ids = due_studies(session, now, settings.study_quiet_s)
    made = 0
    for study_id in study_ids:
        try:
            # the patient's earlier studies asked of the PACS first (worker.jobs.priors); a
            # study whose priors are still being fetched waits for a later sweep
            if not request_priors(settings, study_id):
                continue
            if _earlier_unsettled(settings, study_id, now):
                continue
            made += assemble_study(settings, study_id, on_due) is not None
        except Exception:  # one study must not stop the others; it is tried again next sweep
            log.exception("study assembly failed", extra={"study_id": study_id})
    return made


def _earlier_unsettled(settings: Settings, study_id: int, now: dt.datetime) -> bool:
    """Whether an earlier study of the same patient is still to be reported.

    The patient's studies are reported oldest first: a study reported before its priors (just
    moved from the PACS, still being scored) would go to the PACS without its comparison and
    be replaced as each prior is reported. An earlier study that stays unreported (its
    assembly failing) holds the later ones back for ``EARLIER_WAIT_S`` (or ten quiet times)
    at most; its report, when it comes, re-opens them."""
    horizon = now - dt.timedelta(seconds=max(EARLIER_WAIT_S, 10 * settings.study_quiet_s))
    with session_scope(settings.effective_database_url) as session:
        study = session.get(Study, study_id)
        if study is None or not study.patient_id or study.study_date is None:
            return False
        earlier = select(Study.id).where(
            Study.patient_id == study.patient_id,
            Study.issuer_of_patient_id == study.issuer_of_patient_id,
            Study.study_date < study.study_date,
            Study.last_image_at.is_not(None),
            Study.last_image_at > horizon,
            or_(Study.assembled_through.is_(None), Study.assembled_through != Study.last_image_at),
        )
        return session.scalar(earlier.limit(1)) is not None


def assemble_study(
    settings: Settings, study_id: int, on_due: Callable[[list[int]], object] = lambda _: None
) -> int | None:
    """Make the study's next report and SR; the report id, or None when there is nothing
    to report (no hand scored by the active model) or the study changed meanwhile."""
    model_version = active_model_version(settings)
    with session_scope(settings.effective_database_url) as session:
        plan = _plan(session, study_id, model_version)
        if plan is None:
            return None
        if plan.result is None:  # nothing of it scored by this model: nothing to report
            study = session.get_one(Study, study_id)
            study.assembled_through, study.assembled_at = plan.last_image_at, utcnow()
            return None
    store = Store(settings.effective_store_dir)
    result = plan.result
    series_uid = str(generate_uid(entropy_srcs=[result.study_instance_uid, "study-sr-series"]))
    sop_uid = str(
        generate_uid(
            entropy_srcs=[result.study_instance_uid, str(plan.version), model_version, "study-sr"]
        )
    )
    headers = [read_dicom(store.path(plan.sources[i.sop_instance_uid]), pixels=False)
               for i in result.images]  # fmt: skip
    sr = build_study_sr(headers, result, series_instance_uid=series_uid, sop_instance_uid=sop_uid)
    key = f"studies/{study_id // 1000:06d}/{study_id}/v{plan.version}.dcm"
    store.write_dataset(key, sr)
    report_json = content(
        result, {"left_out": plan.left_out, "priors_other_model": plan.priors_other_model}
    )
    try:
        with session_scope(settings.effective_database_url) as session:
            recorded = _record(session, plan, sr, key, report_json)
    except IntegrityError:  # another assembly recorded this version first
        return None
    if recorded is None:
        return None
    report_id, result_id = recorded
    on_due(ensure_object_deliveries(settings, result_id))
    # with a previous study: per hand image, an overlay SC of the joints that changed
    on_due(study_overlays(settings, study_id, report_id, result,
                          {h.SOPInstanceUID: h for h in headers}))  # fmt: skip
    log.info("study assembled", extra={"study_id": study_id, "version": plan.version})
    return report_id


def _scored_images(
    session: Session, study: Study, model_version: str
) -> tuple[list[ScoredImage], dict[str, str], list[dict[str, str]], ModelInfo | None]:
    images, keys, left_out = [], {}, []
    model = None
    for instance in sorted(study.instances, key=lambda i: i.id):
        job = next((j for j in instance.jobs if j.model_version == model_version), None)
        score = job.score if job is not None and job.status == JobStatus.DONE else None
        if score is None:
            reason = instance.reason or (
                "not scored by the active model" if instance.status == InstanceStatus.SCORED else ""
            )
            left_out.append({"sop_instance_uid": instance.sop_instance_uid,
                             "status": instance.status.value, "reason": reason})  # fmt: skip
            continue
        model = ModelInfo(score.model_name, score.model_version, score.model_device_uid)
        ref = ObjectRef(
            instance.sop_class_uid,
            instance.sop_instance_uid,
            instance.series_instance_uid,
            study.study_instance_uid,
        )
        joints = {j.label: (j.jsn, j.erosion, j.reason) if j.assessable
                  else (None, None, j.reason) for j in score.joints}  # fmt: skip
        missing = dict((score.missing or {}).get("reasons", {}))
        images.append(ScoredImage(ref, instance.received_at, joints, missing))
        keys[instance.sop_instance_uid] = instance.store_key
    return images, keys, left_out, model


def _plan(session: Session, study_id: int, model_version: str) -> _Plan | None:
    study = session.get_one(Study, study_id)
    if study.last_image_at is None:
        return None
    images, keys, left_out, model = _scored_images(session, study, model_version)
    study_hands = hands(images)
    version = study.report_version + 1
    if model is None or not study_hands:
        return _Plan(study_id, study.last_image_at, version, None, {}, left_out, 0)
    previous = study.reports[-1] if study.reports else None
    priors, other_model = _priors(session, study, model_version)
    current = ObjectRef(Comprehensive3DSRStorage, "", "", study.study_instance_uid)
    result = StudyResult(
        study_instance_uid=study.study_instance_uid,
        study_date=study.study_date,
        version=version,
        model=model,
        images=tuple(sorted((i.ref for i in images), key=lambda r: r.sop_instance_uid)),
        hands=study_hands,
        replaces=_report_ref(previous, study) if previous is not None else None,
        left_out_images=len(left_out),
    )
    if study.study_date is not None and priors:
        grades = {j.label: (j.jsn, j.erosion) if j.jsn is not None and j.erosion is not None
                  else None for h in study_hands for j in h.joints}  # fmt: skip
        point = TimePoint(study.study_instance_uid, study.study_date, current, grades)
        result = replace(result, comparisons=comparisons(point, priors))
    return _Plan(study_id, study.last_image_at, version, result, keys, left_out, other_model)


def _report_ref(report: StudyReport, study: Study) -> ObjectRef:
    return ObjectRef(
        Comprehensive3DSRStorage,
        report.sop_instance_uid,
        report.series_instance_uid,
        study.study_instance_uid,
    )


def _patient_studies(session: Session, study: Study) -> list[Study]:
    """The patient's other studies (same Patient ID within the same issuer); none when the
    study has no Patient ID."""
    if not study.patient_id:
        return []
    return list(
        session.scalars(
            select(Study).where(
                Study.patient_id == study.patient_id,
                Study.issuer_of_patient_id == study.issuer_of_patient_id,
                Study.id != study.id,
            )
        )
    )


def _priors(session: Session, study: Study, model_version: str) -> tuple[list[TimePoint], int]:
    """The patient's other reported studies as time points (latest version of each, reported
    by ``model_version``), and how many were left out for another model."""
    points: list[TimePoint] = []
    other_model = 0
    for other in _patient_studies(session, study):
        if not other.reports:
            continue
        latest = other.reports[-1]
        if latest.model_version != model_version:
            other_model += 1
            continue
        point = time_point(latest.content, _report_ref(latest, other))
        if point is not None:
            points.append(point)
    return points, other_model


def _record(
    session: Session, plan: _Plan, sr: Dataset, key: str, report_json: dict[str, Any]
) -> tuple[int, int] | None:
    """The report, its result object and the study's marks, if the study is as planned."""
    study = session.get_one(Study, plan.study_id)
    if study.last_image_at != plan.last_image_at or study.report_version != plan.version - 1:
        return None  # a late image or another assembly: the next sweep assembles it again
    previous = study.reports[-1] if study.reports else None
    report = StudyReport(
        study_id=study.id,
        version=plan.version,
        model_version=str(report_json["model"]["version"]),
        sop_instance_uid=str(sr.SOPInstanceUID),
        series_instance_uid=str(sr.SeriesInstanceUID),
        store_key=key,
        replaces_id=previous.id if previous is not None else None,
        content=report_json,
    )
    session.add(report)
    session.flush()
    result = ResultObject(
        job_id=None,
        study_report_id=report.id,
        kind=STUDY_SR_KIND,
        sop_class_uid=str(sr.SOPClassUID),
        sop_instance_uid=str(sr.SOPInstanceUID),
        store_key=key,
    )
    session.add(result)
    study.assembled_through, study.assembled_at = plan.last_image_at, utcnow()
    study.report_version = plan.version
    session.flush()
    session.add(
        AuditEvent(
            event=AuditEventType.STUDY_ASSEMBLED,
            actor="assembly",
            detail={
                "study_id": study.id,
                "version": plan.version,
                "sop_instance_uid": report.sop_instance_uid,
                "images": len(report_json["images"]),
                "left_out": len(report_json["left_out"]),
            },
        )
    )
    _reopen_later(session, study)
    return report.id, result.id


def _reopen_later(session: Session, study: Study) -> None:
    """The patient's later assembled studies are assembled again, so that their comparison
    takes this report in (a study of an earlier visit that arrived late)."""
    if study.study_date is None:
        return
    later = [s.id for s in _patient_studies(session, study)
             if s.report_version > 0 and s.study_date is not None
             and s.study_date > study.study_date]  # fmt: skip
    if later:
        session.execute(update(Study).where(Study.id.in_(later)).values(assembled_through=None))
