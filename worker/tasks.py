"""The Celery tasks: thin wrappers that give worker.jobs its settings and retry policy."""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Task

from worker import jobs
from worker.celery_app import app
from worker.queueing import enqueue_build, enqueue_send
from worker.settings import Settings

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings()


def _retry_or_fail(task: Task, job_id: int, exc: jobs.Transient) -> None:
    limit = settings().max_task_retries
    if task.request.retries >= limit:
        jobs.fail_job(settings(), job_id, f"gave up after {limit} retries: {exc}")
        return
    raise task.retry(exc=exc, countdown=min(2 ** (task.request.retries + 1), 120))


@app.task(name="rascore.score", bind=True, max_retries=None)
def score(self: Task, job_id: int) -> str:
    """Score one instance; on success, build its results."""
    try:
        outcome = jobs.score_job(settings(), job_id, jobs.worker_name(self.request.hostname))
    except jobs.Transient as exc:
        _retry_or_fail(self, job_id, exc)
        return "retry"
    if outcome.status == "done":  # (a job done elsewhere is built there, or by the sweeper)
        enqueue_build(job_id, settings().effective_database_url)
    return outcome.status


@app.task(name="rascore.build", bind=True, max_retries=None)
def build(self: Task, job_id: int) -> str:
    """Make the SR, SC and GSPS of a scored job; each one's deliveries go as soon as it is made."""
    url = settings().effective_database_url

    def send_now(delivery_ids: list[int]) -> None:
        for delivery_id in delivery_ids:
            enqueue_send(url, delivery_id, 0)

    try:
        jobs.build_results(settings(), job_id, send_now)
    except jobs.Transient as exc:
        if self.request.retries >= settings().max_task_retries:
            log.error("build gave up", extra={"job_id": job_id, "error": str(exc)})
            return "gave up"  # the sweeper finds the job unbuilt and queues it again later
        raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 120)) from exc
    return "built"


@app.task(name="rascore.send", bind=True, max_retries=None)
def send(self: Task, delivery_id: int, attempt: int) -> str:
    """One attempt of one delivery. Retries are not Celery countdowns (a message held for an
    hour would sit unacknowledged in a worker): the outbox keeps ``next_attempt_at`` and the
    sweeper queues the next attempt when it is due."""
    try:
        return jobs.send_delivery(settings(), delivery_id, attempt).status
    except jobs.Transient as exc:
        raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 120)) from exc
