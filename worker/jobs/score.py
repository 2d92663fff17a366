"""Scoring one received image: a plain function of the settings and a job id (Celery-free,
testable).

It is idempotent: it may run twice, concurrently or after a crash, and the database ends the
same. The image score is written in the same transaction that moves the job from not-done to
done, guarded by ``WHERE status != 'done'``, so the second of two racing runs finds nothing to
update and throws its work away. A job that cannot succeed ends in ``failed`` with a one-line
reason (:mod:`worker.jobs.outcomes`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from dicom_io.reading import GreyscaleImage, UnreadableImage, read_dicom
from dicom_io.sc import overlay_grey
from scoring.model import ModelRefused
from worker import metrics
from worker.db.engine import session_scope
from worker.db.models import (
    AuditEvent,
    AuditEventType,
    ImageScoreRow,
    InstanceStatus,
    Job,
    JobAttempt,
    JobStatus,
    utcnow,
)
from worker.jobs.mapping import joint_rows, score_row
from worker.jobs.outcomes import (
    Outcome,
    Transient,
    coded,
    end_attempt,
    end_attempt_in,
    failed_event,
    failure_reason,
    reason_code,
    worker_name,
)
from worker.node.store import Store
from worker.settings import Settings

if TYPE_CHECKING:
    from scoring.pipeline import Scorer
    from worker.scoring_io import ScoredFile

log = logging.getLogger(__name__)


@lru_cache(maxsize=2)
def _scorer(model_dir: str) -> Scorer:
    """The model, loaded once per worker process."""
    from scoring.pipeline import Scorer

    share_cores(Settings().workers)
    return Scorer.load(Path(model_dir) if model_dir else None)


def share_cores(processes: int) -> int:
    """Let this process compute with its share of the cores, and return that share.

    torch and OpenCV each start a thread per core in every process; with ``processes`` pool
    processes scoring at once, that is ``processes`` times too many threads, and OpenMP's
    spinning threads then stall each other (on two cores, a score's p95 was 4.5 times its
    median). One process's share keeps them from competing."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = max(1, (cores or 1) // max(processes, 1))
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return threads


@dataclass(frozen=True)
class _Claimed:
    """A job this run holds: its attempt, its image, and when the image arrived."""

    attempt_id: int
    path: Path
    received_at: dt.datetime


def score_job(settings: Settings, job_id: int, worker: str | None = None) -> Outcome:
    """Score the image of a queued (or running) job and record its score."""
    url = settings.effective_database_url
    worker = worker or worker_name()
    try:
        scorer = _scorer(str(settings.model_dir or ""))
    except ModelRefused as exc:
        # the worker's model is not what its card says: no score of it can be trusted, and
        # leaving the job queued would only bring it back every half hour
        log.error("model refused", extra={"job_id": job_id, "error": str(exc)})
        return _fail(url, job_id, None, failure_reason(exc, "model-refused"))
    try:
        claimed = _claim(settings, job_id, scorer.bundle.version, worker)
    except OperationalError as exc:
        raise Transient(f"database: {exc.orig}") from exc
    if isinstance(claimed, Outcome):
        return claimed
    scored = _score_file(url, job_id, claimed, scorer)
    if isinstance(scored, Outcome):
        return scored
    grey_key = None
    if scored.score.joints:  # without joints no overlay is built
        grey_key = _keep_overlay_grey(Store(settings.effective_store_dir), job_id, scored.image)
    try:
        outcome = _record_score(url, job_id, claimed.attempt_id, scorer, scored, worker, grey_key)
    except IntegrityError:  # a concurrent run wrote the same job's score first
        return Outcome("superseded")
    except OperationalError as exc:
        raise Transient(f"database: {exc.orig}") from exc
    if outcome.status == "done":
        _count_scored(scored, claimed.received_at)
    return outcome


def _claim(settings: Settings, job_id: int, version: str, worker: str) -> _Claimed | Outcome:
    """Move the job to running and open an attempt; an Outcome when there is nothing to do."""
    store = Store(settings.effective_store_dir)
    with session_scope(settings.effective_database_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            return Outcome("skipped", "no such job")
        if job.model_version != version:
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
        received_at = job.instance.received_at
        if received_at.tzinfo is None:  # SQLite gives naive datetimes back
            received_at = received_at.replace(tzinfo=dt.UTC)
        return _Claimed(attempt.id, store.path(job.instance.store_key), received_at)


def _score_file(url: str, job_id: int, claimed: _Claimed, scorer: Scorer) -> ScoredFile | Outcome:
    """Read and score the image; a failure that will not pass ends the job."""
    attempt_id = claimed.attempt_id
    try:
        from worker.scoring_io import score_dataset

        dataset = read_dicom(claimed.path)  # a deflated file inflates only up to a cap
        return score_dataset(scorer, dataset)
    except FileNotFoundError:
        return _fail(url, job_id, attempt_id, "missing-file: image file missing from the store")
    except UnreadableImage as exc:
        return _fail(url, job_id, attempt_id, failure_reason(exc, "unreadable"))
    except OSError as exc:
        end_attempt(url, attempt_id, "retry", str(exc))
        raise Transient(f"store: {exc}") from exc
    except Exception as exc:  # a bug or an image the scorer cannot handle: not worth retrying
        if isinstance(exc, MemoryError) or type(exc).__name__ == "SoftTimeLimitExceeded":
            # out of memory, or past the worker's soft time limit (Celery's, known by name here)
            reason = f"too-large: {type(exc).__name__} while scoring (too large an image?)"
            return _fail(url, job_id, attempt_id, reason)
        log.exception("scoring failed", extra={"job_id": job_id})
        return _fail(url, job_id, attempt_id, failure_reason(exc, "scoring-error"))


def _keep_overlay_grey(store: Store, job_id: int, image: GreyscaleImage) -> str | None:
    """Keep the overlay's grey image (shrunk, 8-bit PNG) for the build, which then never
    decodes the source; its key, or None when it could not be written (the build decodes)."""
    key = Store.overlay_grey_key(job_id)
    try:
        # level 1: a few ms to write; the copy is read once and is a fraction of the source
        ok, png = cv2.imencode(".png", overlay_grey(image.pixels), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            return None
        store.write_bytes(key, png.tobytes())
    except (OSError, cv2.error) as exc:
        log.warning("overlay grey copy not kept", extra={"job_id": job_id, "error": str(exc)})
        return None
    return key


def _keep_window(row: ImageScoreRow, image: GreyscaleImage) -> None:
    """The display window the scorer saw, for the GSPS of a source without one."""
    row.window_centre, row.window_width = (float(v) for v in image.window)
    row.window_voi = image.voi[:16] or None
    row.window_function = image.voi_function[:16] or None
    row.window_explanation = image.window_explanation


def _record_score(
    url: str,
    job_id: int,
    attempt_id: int,
    scorer: Scorer,
    scored: ScoredFile,
    worker: str,
    grey_key: str | None = None,
) -> Outcome:
    """Write the score in the transaction that makes the job done (only one run wins)."""
    score = scored.score
    with session_scope(url) as session:
        won = session.execute(  # type: ignore[attr-defined]
            update(Job)
            .where(Job.id == job_id, Job.status != JobStatus.DONE)
            .values(status=JobStatus.DONE, finished_at=utcnow(), reason=score.status)
        ).rowcount
        if not won:
            end_attempt_in(session, attempt_id, "superseded")
            return Outcome("superseded")
        job = session.get_one(Job, job_id)
        image = score_row(scorer.bundle, job_id, job.instance_id, score, scored.timings_ms)
        _keep_window(image, scored.image)
        image.overlay_grey_key = grey_key
        session.add(image)
        session.flush()
        session.add_all(joint_rows(image.id, score))
        job.instance.status = InstanceStatus.SCORED
        # what a reader of the instance must know: no hand, or totals over too few joints
        job.instance.reason = "" if score.status in ("scored", "partial") else score.status
        end_attempt_in(session, attempt_id, "done")
        _scored_event(session, job, scorer, scored, worker)
    return Outcome("done", score.status)


def _scored_event(
    session: Session, job: Job, scorer: Scorer, scored: ScoredFile, worker: str
) -> None:
    score = scored.score
    session.add(
        AuditEvent(
            event=AuditEventType.SCORED,
            actor=worker,
            instance_id=job.instance_id,
            detail={
                "job_id": job.id,
                "model_version": scorer.bundle.version,
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


def _count_scored(scored: ScoredFile, received_at: dt.datetime) -> None:
    metrics.SCORED.inc()
    for stage in ("read", "detect", "identify", "score"):
        if stage in scored.timings_ms:
            metrics.STAGE_SECONDS.labels(stage).observe(scored.timings_ms[stage] / 1e3)
    metrics.RECEIVED_TO_SCORED.observe((utcnow() - received_at).total_seconds())


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
            end_attempt_in(session, attempt_id, "failed", reason)
        session.add(failed_event(job, reason))
    log.warning("job failed", extra={"job_id": job_id, "reason": reason})
    metrics.FAILED.inc()
    metrics.SCORING_FAILED.labels(reason_code(reason)).inc()
    return Outcome("failed", reason)


def fail_job(settings: Settings, job_id: int, reason: str) -> Outcome:
    """Give up on a job after its retries ran out (a free-text reason gets code ``gave-up``)."""
    return _fail(settings.effective_database_url, job_id, None, coded(reason, "gave-up"))
