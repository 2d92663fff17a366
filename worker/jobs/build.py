"""Building the result objects of a scored job: the SR, the overlay SC and the GSPS.

Result objects get UIDs derived from the instance, its content hash, the model version and the
kind, so a rebuild makes the same objects, and unique constraints keep one row of each. A build
that fails keeps the scores and records a failed ``build`` attempt with its reason; an
operator's resend builds it again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from pydicom import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from dicom_io.reading import read_dicom
from dicom_io.results import ScoringResult
from worker import metrics
from worker.db.engine import session_scope
from worker.db.models import (
    AuditEvent,
    AuditEventType,
    Instance,
    Job,
    JobStatus,
    ResultObject,
    utcnow,
)
from worker.jobs.mapping import BUILDERS, stored_result
from worker.jobs.outbox import ensure_deliveries
from worker.jobs.outcomes import (
    Transient,
    end_attempt,
    end_attempt_in,
    failed_event,
    failure_reason,
    reason_code,
    start_attempt,
    worker_name,
)
from worker.node.store import Store
from worker.settings import Settings

log = logging.getLogger(__name__)

RESULT_KINDS = tuple(BUILDERS)


def _result_uid(instance: Instance, model_version: str, what: str) -> str:
    return str(
        generate_uid(entropy_srcs=[instance.sop_instance_uid, instance.sha256, model_version, what])
    )


@dataclass(frozen=True)
class _Plan:
    """What a build has to make: the kinds missing, from which file, under which UIDs."""

    missing: list[str]
    source_path: Path
    result: ScoringResult
    instance_uids: dict[str, tuple[str, str]]  #: kind -> (series UID, SOP instance UID)
    no_joints: bool
    #: what scoring kept: the window it read with (centre, width, explanation) and the grey
    #: copy for the overlay; None for jobs scored before they were kept
    window: tuple[float, float, str] | None = None
    grey_path: Path | None = None


def build_results(
    settings: Settings,
    job_id: int,
    on_due: Callable[[list[int]], object] = lambda _: None,
    worker: str | None = None,
) -> None:
    """Make (or find) the SR, SC and GSPS of a scored job and their deliveries; ``on_due`` gets
    the ids of deliveries ready to go, as soon as each object is made. A build whose process
    died ``max_job_attempts`` times (killed for memory or time) fails instead of looping."""
    try:
        plan = _plan(settings, job_id)
    except OperationalError as exc:
        raise Transient(f"database: {exc.orig}") from exc
    if plan is None:
        return
    if plan.missing and not plan.no_joints and not _build(settings, job_id, plan, on_due, worker):
        return
    on_due(ensure_deliveries(settings, job_id))


def _plan(settings: Settings, job_id: int) -> _Plan | None:
    """What is left to make of a done job (None: not done, or no score)."""
    store = Store(settings.effective_store_dir)
    with session_scope(settings.effective_database_url) as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.DONE or job.score is None:
            return None
        instance = job.instance
        have = {r.kind for r in job.results}
        missing = [k for k in RESULT_KINDS if k not in have]
        score = job.score
        window = None
        if score.window_centre is not None and score.window_width is not None:
            window = (score.window_centre, score.window_width, score.window_explanation or "")
        grey_key = score.overlay_grey_key
        return _Plan(
            missing=missing,
            source_path=store.path(instance.store_key),
            result=stored_result(job.score, instance.sop_instance_uid),
            instance_uids={
                kind: (
                    _result_uid(instance, job.model_version, f"{kind}-series"),
                    _result_uid(instance, job.model_version, kind),
                )
                for kind in missing
            },
            no_joints=not job.score.joints,
            window=window,
            grey_path=store.path(grey_key) if grey_key else None,
        )


def _inputs(plan: _Plan) -> tuple[Dataset, dict[str, dict[str, Any]]]:
    """The source and what each builder gets besides it: the header alone (no pixels read,
    none decoded) with the grey copy and window scoring kept, else the whole source (a job
    scored before they were kept, or a copy lost), which the SC and GSPS decode."""
    extra: dict[str, dict[str, Any]] = {"gsps": {"window": plan.window}}
    grey = None
    if plan.grey_path is not None and plan.window is not None:
        grey = cv2.imread(str(plan.grey_path), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            log.warning("overlay grey copy unreadable: decoding", extra={"path": plan.grey_path})
    if grey is None:
        return read_dicom(plan.source_path), extra
    extra["sc"] = {"grey": grey}
    return read_dicom(plan.source_path, pixels=False), extra


def _build(
    settings: Settings,
    job_id: int,
    plan: _Plan,
    on_due: Callable[[list[int]], object],
    worker: str | None,
) -> bool:
    """Make the missing objects under one ``build`` attempt; False when the build failed."""
    url = settings.effective_database_url
    try:
        attempt_id, died = start_attempt(url, job_id, "build", worker)
    except OperationalError as exc:
        raise Transient(f"database: {exc.orig}") from exc
    if died >= settings.max_job_attempts:
        reason = f"too-large: worker died {died} times while building the results"
        _results_failed(url, job_id, attempt_id, reason)
        return False
    try:
        _build_missing(settings, job_id, plan, on_due)
    except (Transient, OperationalError) as exc:  # may pass: the task tries again
        with contextlib.suppress(OperationalError):
            end_attempt(url, attempt_id, "retry", str(exc))
        if isinstance(exc, OperationalError):
            raise Transient(f"database: {exc.orig}") from exc
        raise
    except Exception as exc:  # an image the builders cannot describe: say so, once
        log.exception("building results failed", extra={"job_id": job_id})
        _results_failed(url, job_id, attempt_id, failure_reason(exc, "build-error"))
        return False
    end_attempt(url, attempt_id, "done")
    return True


def _build_missing(
    settings: Settings, job_id: int, plan: _Plan, on_due: Callable[[list[int]], object]
) -> None:
    """Make and record each missing object, the SR first (on its way before the others are
    made). A store that cannot be reached raises :class:`Transient`; anything else is a
    failure of the build."""
    url = settings.effective_database_url
    store = Store(settings.effective_store_dir)
    try:
        source, extra = _inputs(plan)
    except OSError as exc:
        raise Transient(f"store: {exc}") from exc
    for kind in plan.missing:
        series_uid, sop_uid = plan.instance_uids[kind]
        started = time.perf_counter()
        dataset = BUILDERS[kind](
            source,
            plan.result,
            series_instance_uid=series_uid,
            sop_instance_uid=sop_uid,
            **extra.get(kind, {}),
        )
        key = Store.result_key(job_id, kind)
        try:
            store.write_dataset(key, dataset)
        except OSError as exc:
            raise Transient(f"store: {exc}") from exc
        metrics.STAGE_SECONDS.labels("build").observe(time.perf_counter() - started)
        _record_result(url, job_id, kind, str(dataset.SOPClassUID), sop_uid, key)
        on_due(ensure_deliveries(settings, job_id, complete=False))


def _record_result(
    url: str, job_id: int, kind: str, sop_class: str, sop_uid: str, key: str
) -> None:
    # a concurrent build may record the same object (same UIDs, same file) first
    with contextlib.suppress(IntegrityError):
        _record_result_once(url, job_id, kind, sop_class, sop_uid, key)


def _record_result_once(
    url: str, job_id: int, kind: str, sop_class: str, sop_uid: str, key: str
) -> None:
    with session_scope(url) as session:
        exists = session.scalar(
            select(ResultObject).where(ResultObject.job_id == job_id, ResultObject.kind == kind)
        )
        if exists is not None:
            return  # another run made it first: same UIDs, same file name
        job = session.get_one(Job, job_id)
        session.add(
            ResultObject(
                job_id=job_id,
                kind=kind,
                sop_class_uid=sop_class,
                sop_instance_uid=sop_uid,
                store_key=key,
            )
        )
        session.add(
            AuditEvent(
                event=AuditEventType.BUILT,
                actor=worker_name(),
                instance_id=job.instance_id,
                detail={"job_id": job_id, "kind": kind, "sop_instance_uid": sop_uid},
            )
        )


def _results_failed(url: str, job_id: int, attempt_id: int, reason: str) -> None:
    """The scores stand; only the result objects are missing. Marked built so nobody loops;
    the failed ``build`` attempt carries the reason (``/failures`` lists it until a resend
    builds the job again)."""
    with session_scope(url) as session:
        job = session.get_one(Job, job_id)
        job.built_at = utcnow()
        job.reason = reason[:2000]
        end_attempt_in(session, attempt_id, "failed", reason)
        session.add(failed_event(job, reason))
    log.warning("build failed", extra={"job_id": job_id, "reason": reason})
    metrics.BUILDS_FAILED.labels(reason_code(reason)).inc()
