"""Putting work on the broker, and recording that it is there.

Publishing never blocks a C-STORE for long: every Redis socket has a timeout
(worker.jobs.celery_app) and there is one quick retry, then the work is left to the sweeper
(worker.node.sweeper), which finds it in the database. After a failure, publishing is not tried
again for a few seconds, so a burst of C-STOREs against a dead broker costs one wait, not one
each. The database says what must be done; the broker only says what is being done now
(:func:`held_score_jobs` reads it).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from worker.db.engine import session_scope
from worker.db.models import Delivery, Job, utcnow
from worker.jobs.celery_app import SCORE_QUEUE, SEND_QUEUE, current

log = logging.getLogger(__name__)

#: a send claimed longer ago than this belongs to a dead worker and may be taken over
SEND_CLAIM_S = 300.0
#: after a failed publish, publishing to that broker is not tried again for this long
BROKER_DOWN_S = 5.0

_RETRY = {"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.2}
_down_until: dict[str, float] = {}  #: broker URL -> monotonic time it may be tried again
_lock = threading.Lock()


def _broker() -> str:
    return str(current().conf.broker_url or "")


def publish(task: str, args: list[int], queue: str) -> bool:
    """Put one task on the broker; False (logged) when the broker is down or not answering."""
    broker = _broker()
    with _lock:
        if time.monotonic() < _down_until.get(broker, 0.0):
            return False
    try:
        current().send_task(task, args=args, queue=queue, retry=True, retry_policy=_RETRY)
    except Exception as exc:  # broker down: the sweeper will queue it later
        with _lock:
            _down_until[broker] = time.monotonic() + BROKER_DOWN_S
        log.warning("broker unavailable", extra={"task": task, "error": str(exc)[:200]})
        return False
    with _lock:
        _down_until.pop(broker, None)
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


# -- what the broker holds -----------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """The jobs whose scoring message the broker holds right now."""

    queued: frozenset[int]  #: waiting in the queue
    delivered: dict[int, float]  #: delivered to a worker, not acknowledged: job -> epoch seconds


def held_score_jobs() -> Held | None:
    """Read the score queue and the unacknowledged messages of kombu's Redis transport in one
    transaction (O(queue length + unacknowledged)); None when the broker cannot be read (down,
    or not Redis)."""
    try:
        with current().connection_for_read() as connection:
            channel = connection.default_channel
            if not hasattr(channel, "unacked_key"):
                return None  # not the Redis transport
            prefix = getattr(channel, "global_keyprefix", "")
            queues = [SCORE_QUEUE] + [
                f"{SCORE_QUEUE}{channel.sep}{step}" for step in channel.priority_steps if step
            ]
            pipe = channel.client.pipeline(transaction=True)
            for name in queues:
                pipe.lrange(prefix + name, 0, -1)
            pipe.hgetall(prefix + channel.unacked_key)
            pipe.zrange(prefix + channel.unacked_index_key, 0, -1, withscores=True)
            *lists, unacked, index = pipe.execute()
    except Exception as exc:  # broker down or not answering: try again next time
        log.warning("cannot read the broker", extra={"error": str(exc)[:200]})
        return None
    queued = {job for raw in (m for q in lists for m in q) if (job := _score_job(raw)) is not None}
    when = {_text(tag): float(at) for tag, at in index}
    delivered: dict[int, float] = {}
    for tag, raw in unacked.items():
        try:
            message = json.loads(raw)[0]
        except (ValueError, IndexError, TypeError):
            continue
        job = _score_job(message)
        if job is not None:
            at = when.get(_text(tag), 0.0)
            delivered[job] = max(at, delivered.get(job, 0.0))
    return Held(frozenset(queued), delivered)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _score_job(message: bytes | str | dict[str, Any]) -> int | None:
    """The job id of a ``rascore.score`` message (Celery protocol 2, JSON); None otherwise."""
    try:
        body: dict[str, Any] = json.loads(message) if isinstance(message, bytes | str) else message
        headers = body.get("headers") or {}
        if headers.get("task") != "rascore.score":
            return None
        payload = body["body"]
        if (body.get("properties") or {}).get("body_encoding") == "base64":
            payload = base64.b64decode(payload)
        args = json.loads(payload)[0]
        return int(args[0])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


# -- what the API reports of the broker ----------------------------------------------------------


def broker_health() -> str:
    """``ok``, or ``error: <type>`` when the broker cannot be reached within seconds."""
    try:
        with current().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue; empty when the broker is away (the health check says why)."""
    depths: dict[str, int] = {}
    try:
        with current().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            channel = connection.default_channel
            redis = getattr(channel, "client", None)  # Redis: a queue is a list
            for queue in (SCORE_QUEUE, SEND_QUEUE):
                if redis is not None:
                    count = int(redis.llen(queue))
                else:
                    _, count, _ = channel.queue_declare(queue=queue, passive=True)
                depths[queue] = count
    except Exception:  # broker away: no depth to tell
        pass
    return depths
