"""The Celery application: two queues, late acknowledgement, one task at a time per process.

``score`` carries scoring and the building of result objects (CPU-bound, prefork); ``send``
carries deliveries to the PACS (network-bound), so a slow or absent PACS never holds up
scoring. Tasks are idempotent (see worker.jobs.score), which is what makes ``acks_late`` with
``reject_on_worker_lost`` safe: a task whose process dies is delivered again, and running it
twice changes nothing. The SQL database is the system of record; there is no result backend.

Pool children have a soft and a hard time limit and are replaced when they grow past a memory
cap, so one huge image cannot hold or exhaust a worker for ever (worker.jobs.tasks counts the
attempts of a job whose child keeps dying). Every Redis socket has a timeout: a broker that
stops answering costs a publisher seconds, never a hang.

Nothing is configured at import. :func:`configure` makes the process's app from the settings
(the node and ``rascore worker`` call it; :mod:`worker.jobs.worker_app` is the ``celery -A``
target of the node's worker processes); :func:`current` is that app, made from ``Settings()``
on first use when nothing configured one. A new broker gets a new app, so no connection pooled
for the old one is ever reused.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from kombu import Queue

from worker.settings import Settings

SCORE_QUEUE = "score"
SEND_QUEUE = "send"
#: longer than any task may run: a message unacknowledged for this long is delivered again
VISIBILITY_TIMEOUT_S = 3 * 3600

_app: Celery | None = None
_lock = threading.Lock()


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Kombu's Redis options: the visibility timeout, and socket timeouts so that a broker
    that accepts connections but never answers makes a command fail instead of hang."""
    return {
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "socket_timeout": settings.broker_timeout_s,
        "socket_connect_timeout": settings.broker_timeout_s,
    }


def _soft_limit(settings: Settings) -> float | None:
    """The soft time limit, when one is set below the hard one (billiard arms the hard limit
    only once the soft one has passed)."""
    soft = settings.task_soft_time_limit_s
    return soft if 0 < soft < settings.task_time_limit_s else None


def make_celery(settings: Settings, broker_url: str | None = None) -> Celery:
    """A Celery app on the broker of ``settings`` (or ``broker_url``), with the node's
    policies; its tasks are :mod:`worker.jobs.tasks` (shared tasks, bound to any app)."""
    app = Celery("rascore", include=["worker.jobs.tasks"])
    app.conf.update(
        broker_url=broker_url or settings.broker_url,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=SCORE_QUEUE,
        task_queues=[Queue(SCORE_QUEUE), Queue(SEND_QUEUE)],
        task_routes={"rascore.send": {"queue": SEND_QUEUE}},
        broker_transport_options=broker_transport_options(settings),
        broker_connection_timeout=settings.broker_timeout_s,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for a restarted broker
        task_soft_time_limit=_soft_limit(settings),
        task_time_limit=settings.task_time_limit_s,
        worker_max_memory_per_child=settings.worker_max_memory_mb * 1024 or None,  # KiB
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


def configure(settings: Settings, broker_url: str | None = None) -> Celery:
    """Make this process's app for ``settings`` (or ``broker_url``) and use it from now on;
    the previous one is closed with its pooled connections."""
    global _app
    app = make_celery(settings, broker_url)
    with _lock:
        previous, _app = _app, app
    if previous is not None:
        previous.pool.force_close_all()
        previous.close()
    return app


def current() -> Celery:
    """This process's app (configured from ``Settings()`` on first use if nobody did)."""
    app = _app
    return app if app is not None else configure(Settings())


@worker_process_init.connect
def _fresh_connections(**_kwargs: object) -> None:
    """A forked pool process opens its own database connections, never the parent's."""
    from worker.db.engine import engine_for

    engine_for.cache_clear()
