"""Putting work on the broker, and recording that it is there.

Publishing never blocks a C-STORE for long: one quick retry, then the work is left to the
sweeper (worker.sweeper), which finds it in the database. The database says what must be done;
the broker only says what is being done now.
"""

from __future__ import annotations

import logging

from sqlalchemy import update

from worker.celery_app import SCORE_QUEUE, SEND_QUEUE, app
from worker.db.engine import session_scope
from worker.db.models import Delivery, Job, utcnow

log = logging.getLogger(__name__)

#: a send claimed longer ago than this belongs to a dead worker and may be taken over
SEND_CLAIM_S = 300.0

_RETRY = {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}


def publish(task: str, args: list[int], queue: str) -> bool:
    try:
        app.send_task(task, args=args, queue=queue, retry=True, retry_policy=_RETRY)
    except Exception as exc:  # broker down: the sweeper will queue it later
        log.warning("broker unavailable", extra={"task": task, "error": str(exc)[:200]})
        return False
    return True


def enqueue_score(database_url: str, job_id: int) -> bool:
    """Publish a scoring job. Its row is created with ``enqueued_at`` already set (so the
    sweeper does not publish it a second time meanwhile); a failed publish clears it again."""
    published = publish("rascore.score", [job_id], SCORE_QUEUE)
    with session_scope(database_url) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(enqueued_at=utcnow() if published else None)
        )
    return published


def enqueue_build(job_id: int, database_url: str | None = None) -> bool:
    """Queue the building of a done job's results; with ``database_url``, note when (the
    sweeper does not queue it again while that is recent)."""
    if not publish("rascore.build", [job_id], SCORE_QUEUE):
        return False
    if database_url:
        with session_scope(database_url) as session:
            session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=utcnow()))
    return True


def enqueue_send(database_url: str, delivery_id: int, attempt: int) -> bool:
    if not publish("rascore.send", [delivery_id, attempt], SEND_QUEUE):
        return False
    with session_scope(database_url) as session:
        session.execute(
            update(Delivery).where(Delivery.id == delivery_id).values(enqueued_at=utcnow())
        )
    return True
