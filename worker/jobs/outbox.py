"""The outbox: one delivery per result object and destination, each sent, and retried with
backoff, until the destination has it or the attempts run out.

A delivery is claimed before it is sent (a claim older than ``SEND_CLAIM_S`` belongs to a dead
worker and may be taken over); a resent object is the same object, and the PACS keeps one.
The sweeper (:mod:`worker.node.sweeper`) queues the next attempt when it is due, and an
operator's resend (:func:`worker.db.outbox.make_due`) makes one due now.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from dicom_io.net import Destination, client_tls_context, send_files
from worker import metrics
from worker.db.engine import session_scope
from worker.db.models import (
    AuditEvent,
    AuditEventType,
    Delivery,
    DeliveryStatus,
    Instance,
    Job,
    ResultObject,
    Study,
    utcnow,
)
from worker.jobs.outcomes import Outcome, Transient, worker_name
from worker.jobs.priors import is_retrieved_prior
from worker.jobs.queueing import SEND_CLAIM_S
from worker.node.store import Store
from worker.settings import Settings


def ensure_deliveries(settings: Settings, job_id: int, complete: bool = True) -> list[int]:
    """One delivery per result object and configured destination (none for an image of a
    retrieved prior, by default); returns those due now and not yet on the broker.
    ``complete``: every result object exists, the job is built."""
    url = settings.effective_database_url
    destinations = settings.destination_list
    for _ in range(3):
        try:
            with session_scope(url) as session:
                results = session.scalars(
                    select(ResultObject).where(ResultObject.job_id == job_id)
                ).all()
                stays = not settings.priors_send_results and _of_retrieved_prior(session, job_id)
                due = [] if stays else deliveries_for(session, results, destinations)
                if complete:
                    job = session.get_one(Job, job_id)
                    job.built_at = job.built_at or utcnow()
                return due
        except IntegrityError:
            continue  # another run made the same rows: read them again
        except OperationalError as exc:
            raise Transient(f"database: {exc.orig}") from exc
    return []


def _of_retrieved_prior(session: Session, job_id: int) -> bool:
    """Whether the job's image is of a study fetched from the PACS as a prior: its results
    stay on the node unless ``RASCORE_PRIORS_SEND_RESULTS`` (they would land in an old study
    read long ago; the comparison belongs in the new study's SR)."""
    study_uid = session.scalar(
        select(Study.study_instance_uid).join(Instance).join(Job).where(Job.id == job_id)
    )
    return study_uid is not None and is_retrieved_prior(session, study_uid)


def deliveries_for(
    session: Session, results: Sequence[ResultObject], destinations: Sequence[str]
) -> list[int]:
    """Make the missing deliveries of ``results``; the ids of those due now and not yet on
    the broker."""
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
    return due


def ensure_object_deliveries(settings: Settings, result_id: int) -> list[int]:
    """:func:`ensure_deliveries` for one result object (a study SR, which has no job)."""
    for _ in range(3):
        try:
            with session_scope(settings.effective_database_url) as session:
                result = session.get_one(ResultObject, result_id)
                return deliveries_for(session, [result], settings.destination_list)
        except IntegrityError:
            continue  # another run made the same rows: read them again
        except OperationalError as exc:
            raise Transient(f"database: {exc.orig}") from exc
    return []


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
            job = delivery.result.job  # None for a study SR
            instance_id = job.instance_id if job is not None else None
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
    instance_id: int | None,
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
