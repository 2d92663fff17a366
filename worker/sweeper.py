"""The sweeper: puts on the broker whatever the database says is owed and the broker lacks.

It runs in ``rascore serve`` every few seconds and once, with ``everything=True``, at start-up
(the reconciliation: every unfinished job is queued again, whatever the broker still holds,
because running a task twice is harmless and losing one is not). It covers a broker that was
down when an image arrived, a broker restarted without its data, a worker that died with a
task, and deliveries whose next attempt is due.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import and_, or_, select

from worker.db.engine import session_scope
from worker.db.models import Delivery, DeliveryStatus, Job, JobStatus, utcnow
from worker.queueing import SEND_CLAIM_S, enqueue_build, enqueue_score, enqueue_send

log = logging.getLogger(__name__)

#: a job queued or running for longer than this without finishing is queued again
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


def sweep(database_url: str, *, everything: bool = False, now: dt.datetime | None = None) -> Swept:
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
    )
    if done != Swept():
        log.info("swept", extra={"jobs": done.jobs, "builds": done.builds, "sends": done.sends})
    return done
