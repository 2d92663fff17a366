"""The sweeper: puts on the broker whatever the database says is owed and the broker lacks.

It runs in ``rascore serve`` every few seconds and once, with ``everything=True``, at start-up
(the reconciliation: every unfinished job is queued again, whatever the broker still holds,
because running a task twice is harmless and losing one is not). It covers a broker that was
down when an image arrived, a broker restarted without its data, a worker that died with a
task, and deliveries whose next attempt is due.

:func:`reconcile` compares the unfinished jobs with what the broker holds, so a message the
broker lost (an append-only file that lost its last second, a Redis without persistence, a
worker host that died holding it) is published again within about a minute rather than after
``STALE_JOB_S``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from worker.db.engine import session_scope
from worker.db.models import Delivery, DeliveryStatus, Job, JobStatus, utcnow
from worker.jobs.queueing import (
    SEND_CLAIM_S,
    enqueue_build,
    enqueue_score,
    enqueue_send,
    held_score_jobs,
)
from worker.jobs.study import assemble_due
from worker.settings import Settings

log = logging.getLogger(__name__)

#: a job queued or running for longer than this without finishing is queued again (whatever
#: the broker holds; :func:`reconcile` finds lost messages much sooner)
STALE_JOB_S = 1800.0
#: a done job whose results are not made after this long is built again
BUILD_GRACE_S = 60.0
#: a delivery queued this long ago and still not attempted is queued again
STALE_SEND_S = 300.0
BATCH = 500


@dataclass(frozen=True)
class Swept:
    jobs: int = 0
    builds: int = 0
    sends: int = 0
    studies: int = 0  #: study reports made (worker.jobs.study)


def sweep(
    database_url: str,
    *,
    everything: bool = False,
    now: dt.datetime | None = None,
    settings: Settings | None = None,
) -> Swept:
    """With ``settings``, the studies due are assembled too (:func:`assemble_due`)."""
    now = now or utcnow()
    stale = now - dt.timedelta(seconds=STALE_JOB_S)
    with session_scope(database_url) as session:
        unfinished = [JobStatus.QUEUED, JobStatus.RUNNING]
        query = select(Job.id).where(Job.status.in_(unfinished))
        if not everything:
            query = query.where(or_(Job.enqueued_at.is_(None), Job.enqueued_at < stale))
        job_ids = list(session.scalars(query.order_by(Job.id).limit(BATCH)))
        build_query = select(Job.id).where(Job.status == JobStatus.DONE, Job.built_at.is_(None))
        if not everything:
            build_query = build_query.where(
                Job.finished_at < now - dt.timedelta(seconds=BUILD_GRACE_S),
                or_(
                    Job.enqueued_at.is_(None),
                    Job.enqueued_at < now - dt.timedelta(seconds=STALE_SEND_S),
                ),
            )
        build_ids = list(session.scalars(build_query.order_by(Job.id).limit(BATCH)))
        send_query = select(Delivery.id, Delivery.attempts).where(
            Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at <= now
        )
        if not everything:
            send_query = send_query.where(
                or_(
                    Delivery.enqueued_at.is_(None),
                    Delivery.enqueued_at < Delivery.next_attempt_at,
                    and_(
                        Delivery.enqueued_at < now - dt.timedelta(seconds=STALE_SEND_S),
                        or_(
                            Delivery.claimed_at.is_(None),
                            Delivery.claimed_at < now - dt.timedelta(seconds=SEND_CLAIM_S),
                        ),
                    ),
                )
            )
        sends = list(session.execute(send_query.order_by(Delivery.id).limit(BATCH)))
    done = Swept(
        jobs=sum(enqueue_score(database_url, i) for i in job_ids),
        builds=sum(enqueue_build(i, database_url) for i in build_ids),
        sends=sum(enqueue_send(database_url, i, attempts) for i, attempts in sends),
        studies=_assemble(database_url, settings, now),
    )
    if done != Swept():
        log.info(
            "swept",
            extra={
                "jobs": done.jobs,
                "builds": done.builds,
                "sends": done.sends,
                "studies": done.studies,
            },
        )
    return done


def _assemble(database_url: str, settings: Settings | None, now: dt.datetime) -> int:
    """The studies due assembled, their SRs' deliveries queued at once."""
    if settings is None:
        return 0
    return assemble_due(settings, now, lambda ids: [enqueue_send(database_url, i, 0) for i in ids])


def reconcile(
    database_url: str, *, after_s: float, hold_s: float, now: dt.datetime | None = None
) -> int:
    """Publish again the unfinished jobs put on the broker more than ``after_s`` ago whose
    message the broker no longer holds: not waiting in the queue, and not delivered to a worker
    within ``hold_s`` (no live worker holds a message longer: a task's hard time limit plus its
    longest retry countdown). Returns how many were published; 0 when the broker cannot be read.

    A job published twice is harmless (tasks are idempotent); one lost is not."""
    now = now or utcnow()
    with session_scope(database_url) as session:
        candidates = list(
            session.scalars(
                select(Job.id)
                .where(
                    Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
                    Job.enqueued_at.is_not(None),
                    Job.enqueued_at < now - dt.timedelta(seconds=after_s),
                )
                .order_by(Job.id)
            )
        )
    if not candidates:
        return 0  # the usual case: no broker round trip
    held = held_score_jobs()
    if held is None:
        return 0
    alive_since = now.timestamp() - hold_s
    lost = [
        job
        for job in candidates
        if job not in held.queued and held.delivered.get(job, 0.0) < alive_since
    ][:BATCH]
    published = sum(enqueue_score(database_url, job) for job in lost)
    if lost:
        log.warning(
            "published again jobs the broker had lost",
            extra={"jobs": len(lost), "published": published},
        )
    return published


def hold_limit_s(settings: Settings) -> float:
    """The longest a live worker holds a scoring message unacknowledged: its longest retry
    countdown plus the hard time limit, and a margin."""
    return settings.task_retry_max_s + settings.task_time_limit_s + 60.0
