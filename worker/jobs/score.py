"""What the tasks do, as plain functions of the settings and a row id (Celery-free, testable).

Each function is idempotent: it may run twice, concurrently or after a crash, and the database
ends the same. Scoring writes its image score in the same transaction that moves the job from
not-done to done, guarded by ``WHERE status != 'done'``, so the second of two racing runs
finds nothing to update and throws its work away. Result objects get UIDs derived from the
instance, its content hash, the model version and the kind, so a rebuild makes the same
objects, and unique constraints keep one row of each. A delivery is claimed before it is sent.

Failures are of two kinds: :class:`Transient` (database or store unreachable — the task
retries with backoff) and everything else, which ends the job in ``failed`` with its reason.
A reason is one line, ``<reason code>: <message>`` (:func:`failure_reason`; the code is the
typed exception's ``reason``, e.g. ``too-large``), never a traceback; ``/failures`` shows it and
``/metrics`` counts it by code. A build that fails keeps the scores and records a failed
``build`` attempt with its reason; an operator's resend builds it again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from dicom_io.scu import Destination, client_tls_context, send_files
from pydicom.uid import generate_uid
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from dicom_io.overlay import build_overlay_sc
from dicom_io.presentation_state import build_gsps
from dicom_io.reading import UnreadableImage, read_dicom
from dicom_io.results import JointResult, ModelInfo, ScoringResult
from dicom_io.sr import build_sr
from scoring.model import ModelRefused
from worker import metrics
from worker.db.engine import session_scope
from worker.db.models import (
    AuditEvent,
    AuditEventType,
    Delivery,
    DeliveryStatus,
    ImageScore,
    Instance,
    InstanceStatus,
    Job,
    JobAttempt,
    JobStatus,
    JointScore,
    ResultObject,
    utcnow,
)
from worker.jobs.queueing import SEND_CLAIM_S

if TYPE_CHECKING:
    from scoring.pipeline import ImageScore as PipelineScore
from worker.node.store import Store
from worker.settings import Settings

log = logging.getLogger(__name__)

RESULT_KINDS = ("sr", "sc", "gsps")


class Transient(Exception):
    """A failure that may pass: the task should be retried later."""


_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_CODED = re.compile(r"^([a-z0-9][a-z0-9-]{0,39}): ")
MAX_MESSAGE = 300


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def failure_reason(exc: BaseException, default_code: str) -> str:
    """``<reason code>: <message>`` in one line. A typed failure (a ``reason`` class attribute,
    as :class:`dicom_io.reading.UnreadableImage` has) gives its code and message; anything else
    gets ``default_code`` and names the exception's type."""
    code = getattr(exc, "reason", None)
    message = _one_line(str(exc))
    if isinstance(code, str) and _CODE.fullmatch(code):
        return f"{code}: {message or type(exc).__name__}"
    return f"{default_code}: {type(exc).__name__}" + (f": {message}" if message else "")


def coded(reason: str, default_code: str) -> str:
    """A reason as ``<code>: <message>`` in one line (a free text gets ``default_code``)."""
    line = _one_line(reason)
    return line if _CODED.match(line) else f"{default_code}: {line}"


def reason_code(reason: str) -> str:
    """The code of a ``<code>: <message>`` reason (bounded: a metric label)."""
    found = _CODED.match(reason)
    return found.group(1) if found else "other"


def worker_name(celery_name: str | None = None) -> str:
    """Who did it, for the attempts and the audit trail: the Celery worker name (or the host)
    and the process id."""
    return f"{celery_name or socket.gethostname()}:{os.getpid()}"


@lru_cache(maxsize=2)
def _scorer(model_dir: str):  # type: ignore[no-untyped-def]
    """The model, loaded once per worker process."""
    from scoring.pipeline import Scorer

    return Scorer.load(Path(model_dir) if model_dir else None)


@dataclass(frozen=True)
class Outcome:
    status: str  #: done | failed | skipped (nothing to do) | superseded (another run won)
    detail: str = ""


# -- scoring ------------------------------------------------------------------------------------


def score_job(settings: Settings, job_id: int, worker: str | None = None) -> Outcome:
    url = settings.effective_database_url
    worker = worker or worker_name()
    store = Store(settings.effective_store_dir)
    try:
        scorer = _scorer(str(settings.model_dir or ""))
    except ModelRefused as exc:
        # the worker's model is not what its card says: no score of it can be trusted, and
        # leaving the job queued would only bring it back every half hour
        log.error("model refused", extra={"job_id": job_id, "error": str(exc)})
        return _fail(url, job_id, None, failure_reason(exc, "model-refused"))
    try:
        with session_scope(url) as session:
            job = session.get(Job, job_id)
            if job is None:
                return Outcome("skipped", "no such job")
            if job.model_version != scorer.bundle.version:
                # another worker (or a later one, after a model upgrade) has that model; the
                # sweeper publishes the job again, and it waits for a worker that can do it
                return Outcome("skipped", f"needs model {job.model_version}")
            claimed = session.execute(  # type: ignore[attr-defined]
                update(Job)
                .where(Job.id == job_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
                .values(status=JobStatus.RUNNING)
            ).rowcount
            if not claimed:
                return Outcome("skipped", f"job is {job.status.value}")
            # an attempt still open was started by a worker that died (its message came back)
            # or is running twice; either way a later attempt has begun
            session.execute(
                update(JobAttempt)
                .where(JobAttempt.job_id == job_id, JobAttempt.finished_at.is_(None))
                .values(finished_at=utcnow(), outcome="abandoned")
            )
            attempt = JobAttempt(job_id=job_id, task="score", worker=worker)
            session.add(attempt)
            session.flush()
            attempt_id = attempt.id
            path = store.path(job.instance.store_key)
            received_at = job.instance.received_at
            if received_at.tzinfo is None:  # SQLite gives naive datetimes back
                received_at = received_at.replace(tzinfo=dt.UTC)
    except OperationalError as exc:
        raise Transient(f"database: {exc.orig}") from exc

    try:
        from worker.scoring_io import score_dataset

        dataset = read_dicom(path)  # a deflated file inflates only up to a cap
        scored = score_dataset(scorer, dataset)
    except FileNotFoundError:
        return _fail(url, job_id, attempt_id, "missing-file: image file missing from the store")
    except UnreadableImage as exc:
        return _fail(url, job_id, attempt_id, failure_reason(exc, "unreadable"))
    except OSError as exc:
        _end_attempt(url, attempt_id, "retry", str(exc))
        raise Transient(f"store: {exc}") from exc
    except Exception as exc:  # a bug or an image the scorer cannot handle: not worth retrying
        if isinstance(exc, MemoryError) or type(exc).__name__ == "SoftTimeLimitExceeded":
            # out of memory, or past the worker's soft time limit (Celery's, known by name here)
            reason = f"too-large: {type(exc).__name__} while scoring (too large an image?)"
            return _fail(url, job_id, attempt_id, reason)
        log.exception("scoring failed", extra={"job_id": job_id})
        return _fail(url, job_id, attempt_id, failure_reason(exc, "scoring-error"))

    score = scored.score
    try:
        with session_scope(url) as session:
            won = session.execute(  # type: ignore[attr-defined]
                update(Job)
                .where(Job.id == job_id, Job.status != JobStatus.DONE)
                .values(status=JobStatus.DONE, finished_at=utcnow(), reason=score.status)
            ).rowcount
            if not won:
                _end_attempt_in(session, attempt_id, "superseded")
                return Outcome("superseded")
            job = session.get_one(Job, job_id)
            bundle = scorer.bundle
            image = ImageScore(
                job_id=job_id,
                instance_id=job.instance_id,
                model_name=bundle.name,
                model_version=bundle.version,
                model_device_uid=bundle.device_uid,
                status=score.status,
                total_jsn=score.total_jsn,
                total_erosion=score.total_erosion,
                joints_scored=score.joints_scored,
                hands={side: _hand_totals(score, side) for side in score.hands},
                missing={
                    "labels": list(score.missing),
                    "reasons": {
                        label: score.missing_reasons.get(label, "not found")
                        for label in score.missing
                    },
                },
                pixel_spacing_mm=score.spacing_mm,
                pixel_spacing_assumed=score.spacing_assumed,
                timings_ms=scored.timings_ms,
            )
            session.add(image)
            session.flush()
            for j in score.joints:
                x, y, w, h = (int(v) for v in j.box)
                session.add(
                    JointScore(
                        image_score_id=image.id,
                        label=j.label,
                        box_x=x,
                        box_y=y,
                        box_w=w,
                        box_h=h,
                        # never a grade for a joint the model would not grade
                        jsn=j.jsn if j.assessable else None,
                        erosion=j.erosion if j.assessable else None,
                        assessable=j.assessable,
                        reason="" if j.assessable else j.reason,
                        jsn_probs={"p": [float(p) for p in j.jsn_probs]},
                        erosion_probs={"p": [float(p) for p in j.erosion_probs]},
                        found_by=j.found_by,
                    )
                )
            job.instance.status = InstanceStatus.SCORED
            # what a reader of the instance must know: no hand, or totals over too few joints
            job.instance.reason = "" if score.status in ("scored", "partial") else score.status
            _end_attempt_in(session, attempt_id, "done")
            session.add(
                AuditEvent(
                    event=AuditEventType.SCORED,
                    actor=worker,
                    instance_id=job.instance_id,
                    detail={
                        "job_id": job_id,
                        "model_version": bundle.version,
                        "joints": len(score.joints),
                        "joints_scored": score.joints_scored,
                        "joints_expected": score.joints_expected,
                        "not_assessable": len(score.joints) - score.joints_scored,
                        "total_jsn": score.total_jsn,
                        "total_erosion": score.total_erosion,
                        "status": score.status,
                    },
                )
            )
    except IntegrityError:  # a concurrent run wrote the same job's score first
        return Outcome("superseded")
    except OperationalError as exc:
        raise Transient(f"database: {exc.orig}") from exc
    metrics.SCORED.inc()
    for stage in ("read", "detect", "identify", "score"):
        if stage in scored.timings_ms:
            metrics.STAGE_SECONDS.labels(stage).observe(scored.timings_ms[stage] / 1e3)
    metrics.RECEIVED_TO_SCORED.observe((utcnow() - received_at).total_seconds())
    return Outcome("done", score.status)


def _hand_totals(score: PipelineScore, side: str) -> dict[str, int]:
    """A hand's totals over its assessable joints, and how many joints they cover."""
    graded = [j for j in score.joints if j.label[0] == side and j.assessable]
    return {
        "jsn": sum(j.jsn or 0 for j in graded),
        "erosion": sum(j.erosion or 0 for j in graded),
        "joints_scored": len(graded),
    }


def _end_attempt_in(session, attempt_id: int, outcome: str, error: str = "") -> None:  # type: ignore[no-untyped-def]
    session.execute(
        update(JobAttempt)
        .where(JobAttempt.id == attempt_id)
        .values(finished_at=utcnow(), outcome=outcome, error=error[:2000])
    )


def _end_attempt(url: str, attempt_id: int, outcome: str, error: str = "") -> None:
    with session_scope(url) as session:
        _end_attempt_in(session, attempt_id, outcome, error)


def _fail(url: str, job_id: int, attempt_id: int | None, reason: str) -> Outcome:
    """The terminal state of a job that cannot succeed, with its one-line reason (never over
    done); counted by the reason's code."""
    reason = coded(reason, "failed")
    with session_scope(url) as session:
        failed = session.execute(  # type: ignore[attr-defined]
            update(Job)
            .where(Job.id == job_id, Job.status != JobStatus.DONE)
            .values(status=JobStatus.FAILED, reason=reason[:2000], finished_at=utcnow())
        ).rowcount
        if not failed:
            return Outcome("superseded")
        job = session.get_one(Job, job_id)
        job.instance.status = InstanceStatus.FAILED
        job.instance.reason = reason[:2000]
        if attempt_id is not None:
            _end_attempt_in(session, attempt_id, "failed", reason)
        session.add(_failed_event(job, reason))
    log.warning("job failed", extra={"job_id": job_id, "reason": reason})
    metrics.FAILED.inc()
    metrics.SCORING_FAILED.labels(reason_code(reason)).inc()
    return Outcome("failed", reason)


def _failed_event(job: Job, reason: str) -> AuditEvent:
    return AuditEvent(
        event=AuditEventType.FAILED,
        actor=worker_name(),
        instance_id=job.instance_id,
        detail={"job_id": job.id, "reason": reason[:500]},
    )


def fail_job(settings: Settings, job_id: int, reason: str) -> Outcome:
    """Give up on a job after its retries ran out (a free-text reason gets code ``gave-up``)."""
    return _fail(settings.effective_database_url, job_id, None, coded(reason, "gave-up"))


# -- building the result objects -----------------------------------------------------------------


def _result_uid(instance: Instance, model_version: str, what: str) -> str:
    return str(
        generate_uid(entropy_srcs=[instance.sop_instance_uid, instance.sha256, model_version, what])
    )


def build_results(
    settings: Settings,
    job_id: int,
    on_due: Callable[[list[int]], object] = lambda _: None,
    worker: str | None = None,
) -> None:
    """Make (or find) the SR, SC and GSPS of a scored job and their deliveries; ``on_due`` gets
    the ids of deliveries ready to go, as soon as each object is made. A build whose process
    died ``max_job_attempts`` times (killed for memory or time) fails instead of looping."""
    url = settings.effective_database_url
    store = Store(settings.effective_store_dir)
    try:
        with session_scope(url) as session:
            job = session.get(Job, job_id)
            if job is None or job.status != JobStatus.DONE or job.score is None:
                return
            score = job.score
            instance = job.instance
            have = {r.kind for r in job.results}
            missing = [k for k in RESULT_KINDS if k not in have]
            result = ScoringResult(
                source_sop_instance_uid=instance.sop_instance_uid,
                joints=tuple(
                    JointResult(
                        j.label,
                        (j.box_x, j.box_y, j.box_w, j.box_h),
                        j.jsn,
                        j.erosion,
                        tuple(j.jsn_probs["p"]),
                        tuple(j.erosion_probs["p"]),
                        assessable=j.assessable,
                        reason=j.reason,
                    )
                    for j in score.joints
                ),
                model=ModelInfo(score.model_name, score.model_version, score.model_device_uid),
            )
            source_path = store.path(instance.store_key)
            instance_uids = {
                kind: (
                    _result_uid(instance, job.model_version, f"{kind}-series"),
                    _result_uid(instance, job.model_version, kind),
                )
                for kind in missing
            }
            no_joints = not score.joints
    except OperationalError as exc:
        raise Transient(f"database: {exc.orig}") from exc
    if missing and not no_joints:
        try:
            attempt_id, died = _start_attempt(url, job_id, "build", worker)
        except OperationalError as exc:
            raise Transient(f"database: {exc.orig}") from exc
        if died >= settings.max_job_attempts:
            reason = f"too-large: worker died {died} times while building the results"
            _results_failed(url, job_id, attempt_id, reason)
            return
        try:
            _build_missing(settings, job_id, missing, source_path, result, instance_uids, on_due)
        except (Transient, OperationalError) as exc:  # may pass: the task tries again
            with contextlib.suppress(OperationalError):
                _end_attempt(url, attempt_id, "retry", str(exc))
            if isinstance(exc, OperationalError):
                raise Transient(f"database: {exc.orig}") from exc
            raise
        except Exception as exc:  # an image the builders cannot describe: say so, once
            log.exception("building results failed", extra={"job_id": job_id})
            _results_failed(url, job_id, attempt_id, failure_reason(exc, "build-error"))
            return
        _end_attempt(url, attempt_id, "done")
    on_due(ensure_deliveries(settings, job_id))


def _build_missing(
    settings: Settings,
    job_id: int,
    missing: list[str],
    source_path: Path,
    result: ScoringResult,
    instance_uids: dict[str, tuple[str, str]],
    on_due: Callable[[list[int]], object],
) -> None:
    """Make and record each missing object, the SR first (on its way before the others are
    made). A store that cannot be reached raises :class:`Transient`; anything else is a
    failure of the build."""
    url = settings.effective_database_url
    store = Store(settings.effective_store_dir)
    try:
        source = read_dicom(source_path)
    except OSError as exc:
        raise Transient(f"store: {exc}") from exc
    builders = {"sr": build_sr, "sc": build_overlay_sc, "gsps": build_gsps}
    for kind in missing:
        series_uid, sop_uid = instance_uids[kind]
        started = time.perf_counter()
        dataset = builders[kind](
            source, result, series_instance_uid=series_uid, sop_instance_uid=sop_uid
        )
        key = Store.result_key(job_id, kind)
        try:
            store.write_dataset(key, dataset)
        except OSError as exc:
            raise Transient(f"store: {exc}") from exc
        metrics.STAGE_SECONDS.labels("build").observe(time.perf_counter() - started)
        _record_result(url, job_id, kind, str(dataset.SOPClassUID), sop_uid, key)
        on_due(ensure_deliveries(settings, job_id, complete=False))


def _start_attempt(url: str, job_id: int, task: str, worker: str | None) -> tuple[int, int]:
    """Open an attempt; also close (as abandoned) the ones a dead process left open, and say
    how many attempts of ``task`` died so far."""
    with session_scope(url) as session:
        session.execute(
            update(JobAttempt)
            .where(
                JobAttempt.job_id == job_id,
                JobAttempt.task == task,
                JobAttempt.finished_at.is_(None),
            )
            .values(finished_at=utcnow(), outcome="abandoned")
        )
        died = session.scalar(
            select(func.count(JobAttempt.id)).where(
                JobAttempt.job_id == job_id,
                JobAttempt.task == task,
                JobAttempt.outcome == "abandoned",
            )
        )
        attempt = JobAttempt(job_id=job_id, task=task, worker=worker or worker_name())
        session.add(attempt)
        session.flush()
        return attempt.id, int(died or 0)


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
        _end_attempt_in(session, attempt_id, "failed", reason)
        session.add(_failed_event(job, reason))
    log.warning("build failed", extra={"job_id": job_id, "reason": reason})
    metrics.BUILDS_FAILED.labels(reason_code(reason)).inc()


def ensure_deliveries(settings: Settings, job_id: int, complete: bool = True) -> list[int]:
    """One delivery per result object and configured destination; returns those due now and
    not yet on the broker. ``complete``: every result object exists, the job is built."""
    url = settings.effective_database_url
    destinations = settings.destination_list
    for _ in range(3):
        try:
            with session_scope(url) as session:
                results = session.scalars(
                    select(ResultObject).where(ResultObject.job_id == job_id)
                ).all()
                due = []
                for result in results:
                    known = {d.destination: d for d in result.deliveries}
                    for dest in destinations:
                        delivery = known.get(dest)
                        if delivery is None:
                            delivery = Delivery(
                                result_id=result.id,
                                destination=dest,
                                status=DeliveryStatus.PENDING,
                                next_attempt_at=utcnow(),
                            )
                            session.add(delivery)
                            session.flush()
                        if (
                            delivery.status == DeliveryStatus.PENDING
                            and delivery.attempts == 0
                            and delivery.enqueued_at is None
                        ):
                            due.append(delivery.id)
                if complete:
                    job = session.get_one(Job, job_id)
                    job.built_at = job.built_at or utcnow()
                return due
        except IntegrityError:
            continue  # another run made the same rows: read them again
        except OperationalError as exc:
            raise Transient(f"database: {exc.orig}") from exc
    return []


# -- sending -------------------------------------------------------------------------------------


def backoff_s(settings: Settings, attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: initial × 2^(attempts-1), capped."""
    return float(
        min(settings.send_retry_initial_s * 2 ** max(attempts - 1, 0), settings.send_retry_max_s)
    )


def send_delivery(settings: Settings, delivery_id: int, attempt: int) -> Outcome:
    """Attempt number ``attempt`` (0-based) of a delivery; a message for an attempt that
    already happened (a duplicate from the broker or the sweeper) does nothing."""
    url = settings.effective_database_url
    store = Store(settings.effective_store_dir)
    now = utcnow()
    stale = now - dt.timedelta(seconds=SEND_CLAIM_S)
    try:
        with session_scope(url) as session:
            claimed = session.execute(  # type: ignore[attr-defined]
                update(Delivery)
                .where(
                    Delivery.id == delivery_id,
                    Delivery.status == DeliveryStatus.PENDING,
                    Delivery.attempts == attempt,
                    (Delivery.claimed_at.is_(None)) | (Delivery.claimed_at < stale),
                )
                .values(claimed_at=now)
            ).rowcount
            if not claimed:
                return Outcome("skipped", "not pending, already attempted, or held elsewhere")
            delivery = session.get_one(Delivery, delivery_id)
            path = store.path(delivery.result.store_key)
            destination = delivery.destination
            instance_id = delivery.result.job.instance_id
            kind = delivery.result.kind
    except OperationalError as exc:
        raise Transient(f"database: {exc.orig}") from exc

    started = time.perf_counter()
    try:
        tls = (  # RASCORE_TLS_DESTINATIONS: never in plain to these
            client_tls_context(settings.tls_ca, settings.tls_cert, settings.tls_key)
            if settings.sends_tls(destination)
            else None
        )
        status = send_files(
            Destination.parse(destination), [path], calling_ae=settings.ae_title, tls=tls
        )[0]
        ok, code, why = status.ok, status.status_hex, status.error or ""
    except Exception as exc:  # association refused, host unreachable, a file gone
        ok, code, why = False, "", f"{type(exc).__name__}: {exc}"
    metrics.STAGE_SECONDS.labels("send").observe(time.perf_counter() - started)
    if ok:
        metrics.SENT.labels(kind).inc()
    else:
        metrics.SEND_FAILURES.inc()

    try:
        return _record_send(settings, delivery_id, kind, destination, instance_id, ok, code, why)
    except OperationalError as exc:
        # the claim stays; it goes stale and the sweeper sends again (a resent object is the
        # same object: the PACS keeps one)
        raise Transient(f"database: {exc.orig}") from exc


def _record_send(
    settings: Settings,
    delivery_id: int,
    kind: str,
    destination: str,
    instance_id: int,
    ok: bool,
    code: str,
    why: str,
) -> Outcome:
    with session_scope(settings.effective_database_url) as session:
        delivery = session.get_one(Delivery, delivery_id)
        delivery.attempts += 1
        delivery.claimed_at = None
        delivery.last_status = code
        if ok:
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = utcnow()
            delivery.last_error = ""
            event = AuditEventType.SENT
        else:
            delivery.last_error = why[:2000]
            if delivery.attempts >= settings.send_max_attempts:
                delivery.status = DeliveryStatus.FAILED
            else:
                wait = backoff_s(settings, delivery.attempts)
                delivery.next_attempt_at = utcnow() + dt.timedelta(seconds=wait)
            event = AuditEventType.SEND_FAILED
        session.add(
            AuditEvent(
                event=event,
                actor=worker_name(),
                instance_id=instance_id,
                detail={
                    "delivery_id": delivery_id,
                    "kind": kind,
                    "destination": destination,
                    "attempt": delivery.attempts,
                    "status": code,
                    "error": why[:500],
                },
            )
        )
        final = delivery.status
    if ok:
        return Outcome("done")
    return Outcome("failed" if final == DeliveryStatus.FAILED else "retry", why)
