"""The Celery tasks: thin wrappers that give the jobs their settings and failure policy.

A transient failure (database or store unavailable) is retried in the task, the wait doubling
up to ``task_retry_max_s``; after ``max_task_retries`` tries the task ends and leaves the job
unfinished, and the sweeper's reconciliation publishes it again: an outage delays an
acknowledged image, it never fails it. Only a permanent error fails a job — and so does a job
whose pool child died ``max_job_attempts`` times while scoring it (killed for memory, a crash,
the hard time limit), which would otherwise be delivered again for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from worker.db.engine import session_scope
from worker.db.models import Job, JobAttempt, utcnow
from worker.jobs.build import build_results
from worker.jobs.outbox import send_delivery
from worker.jobs.outcomes import Transient, worker_name
from worker.jobs.queueing import enqueue_build, enqueue_send
from worker.jobs.score import fail_job, score_job
from worker.models_home import settings_for_version
from worker.settings import Settings

log = logging.getLogger(__name__)

#: outcomes of scoring attempts that started and never ended by themselves
_DIED = ("running", "abandoned")


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings()


def job_settings(job_id: int) -> Settings:
    """The settings to score a job with: the installed bundle of the model version it names
    (read at every task, so an activation or a rescore with another model needs no restart)."""
    base = settings()
    if base.model_dir is not None:  # pinned by RASCORE_MODEL_DIR
        return base
    with session_scope(base.effective_database_url) as session:
        version = session.scalar(select(Job.model_version).where(Job.id == job_id))
    return settings_for_version(base, version)


def retry_countdown(settings: Settings, retries: int) -> float:
    """Seconds before in-task retry ``retries + 1``: initial x 2^retries, capped."""
    return float(min(settings.task_retry_initial_s * 2**retries, settings.task_retry_max_s))


def _retry_or_defer(task: Task, what: dict[str, int], exc: Exception) -> str:
    """Retry later in this task, or — its retries spent — end it and leave the unfinished job
    to the sweeper, which publishes it again."""
    retries = task.request.retries
    if retries >= settings().max_task_retries:
        log.warning(
            "transient failure persists; left to the sweeper",
            extra={**what, "error": str(exc)[:200]},
        )
        return "deferred"
    raise task.retry(exc=exc, countdown=retry_countdown(settings(), retries))


def died_attempts(database_url: str, job_id: int) -> int:
    """Scoring attempts of a job that started and never finished: their process died (or,
    rarely, one runs now on a second delivery)."""
    with session_scope(database_url) as session:
        return int(
            session.scalar(
                select(func.count(JobAttempt.id)).where(
                    JobAttempt.job_id == job_id,
                    JobAttempt.task == "score",
                    JobAttempt.outcome.in_(_DIED),
                )
            )
            or 0
        )


def give_up(job_id: int, reason: str) -> str:
    """Fail the job with ``reason`` and close the attempts its dead workers left open."""
    outcome = fail_job(settings(), job_id, reason)
    with session_scope(settings().effective_database_url) as session:
        session.execute(
            update(JobAttempt)
            .where(JobAttempt.job_id == job_id, JobAttempt.finished_at.is_(None))
            .values(finished_at=utcnow(), outcome="died", error=reason[:2000])
        )
    return outcome.status


def too_large(limit_s: float) -> str:
    return f"too-large: scoring took longer than {limit_s:g} s (stopped by the time limit)"


class _ScoreTask(Task):
    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Runs in the worker's main process when the hard time limit killed the child."""
        if not isinstance(exc, TimeLimitExceeded) or not args:
            return
        try:
            give_up(int(args[0]), too_large(settings().task_time_limit_s))
        except Exception as error:  # the sweeper publishes it again; the attempt cap ends it
            log.warning("could not fail a timed-out job", extra={"error": str(error)[:200]})


@shared_task(name="rascore.score", bind=True, max_retries=None, base=_ScoreTask)
def score(self: Task, job_id: int) -> str:
    """Score one instance; on success, build its results here (:func:`_build_here`)."""
    url = settings().effective_database_url
    cap = settings().max_job_attempts
    try:
        died = died_attempts(url, job_id)
        if died >= cap:
            reason = (
                f"too-large: worker died {died} times while scoring (too large or crashing image?)"
            )
            return give_up(job_id, reason)
        outcome = score_job(job_settings(job_id), job_id, worker_name(self.request.hostname))
    except (Transient, OperationalError) as exc:
        return _retry_or_defer(self, {"job_id": job_id}, exc)
    except SoftTimeLimitExceeded:
        return give_up(job_id, too_large(settings().task_soft_time_limit_s))
    if outcome.status == "done":  # (a job done elsewhere is built there, or by the sweeper)
        _build_here(job_id, worker_name(self.request.hostname))
    return outcome.status


def _send_now(url: str) -> Callable[[list[int]], None]:
    def send_now(delivery_ids: list[int]) -> None:
        for delivery_id in delivery_ids:
            enqueue_send(url, delivery_id, 0)

    return send_now


def _build_here(job_id: int, worker: str) -> None:
    """Build a job's results in the task that scored it. Through the queue, a build waits
    behind every image that arrived meanwhile, and an SR is late by as many scorings; here
    it follows at once. Anything that stops it hands the build to its own task (or, the
    broker away, to the sweeper), which tries again with the build's own attempt count."""
    url = settings().effective_database_url
    try:
        build_results(settings(), job_id, _send_now(url), worker)
    except (Transient, OperationalError, SoftTimeLimitExceeded) as exc:
        log.warning("build left to its own task", extra={"job_id": job_id, "error": str(exc)})
        enqueue_build(job_id, url)


@shared_task(name="rascore.build", bind=True, max_retries=None)
def build(self: Task, job_id: int) -> str:
    """Make the SR, SC and GSPS of a scored job; each one's deliveries go as soon as it is made.
    Given up on, a build is found unbuilt by the sweeper and queued again later."""
    url = settings().effective_database_url
    try:
        build_results(settings(), job_id, _send_now(url), worker_name(self.request.hostname))
    except (Transient, OperationalError) as exc:
        return _retry_or_defer(self, {"job_id": job_id}, exc)
    return "built"


@shared_task(name="rascore.send", bind=True, max_retries=None)
def send(self: Task, delivery_id: int, attempt: int) -> str:
    """One attempt of one delivery. Retries are not Celery countdowns (a message held for an
    hour would sit unacknowledged in a worker): the outbox keeps ``next_attempt_at`` and the
    sweeper queues the next attempt when it is due."""
    try:
        return send_delivery(settings(), delivery_id, attempt).status
    except Transient as exc:
        raise self.retry(exc=exc, countdown=min(2 ** (self.request.retries + 1), 120)) from exc
