"""The Celery application: two queues, late acknowledgement, one task at a time per process.

``score`` carries scoring and the building of result objects (CPU-bound, prefork); ``send``
carries deliveries to the PACS (network-bound), so a slow or absent PACS never holds up
scoring. Tasks are idempotent (see worker.jobs), which is what makes ``acks_late`` with
``reject_on_worker_lost`` safe: a task whose process dies is delivered again, and running it
twice changes nothing. The SQL database is the system of record; there is no result backend.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init
from kombu import Queue

from worker.settings import Settings

SCORE_QUEUE = "score"
SEND_QUEUE = "send"
#: longer than any task may run: a message unacknowledged for this long is delivered again
VISIBILITY_TIMEOUT_S = 3 * 3600

app = Celery("rascore", include=["worker.tasks"])


def configure(settings: Settings, broker_url: str | None = None) -> Celery:
    """Point the app at the broker of ``settings`` (or ``broker_url``) and set its policies.

    Connections already pooled for a previous broker are dropped (Celery caches them)."""
    if app._pool is not None:
        app._pool.force_close_all()
    app._after_fork()  # forgets the connection and producer pools, as a fork does
    app.conf.update(
        broker_url=broker_url or settings.broker_url,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=SCORE_QUEUE,
        task_queues=[Queue(SCORE_QUEUE), Queue(SEND_QUEUE)],
        task_routes={"rascore.send": {"queue": SEND_QUEUE}},
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits for a restarted broker
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


@worker_process_init.connect
def _fresh_connections(**_kwargs: object) -> None:
    """A forked pool process opens its own database connections, never the parent's."""
    from worker.db.engine import engine_for

    engine_for.cache_clear()


configure(Settings())
