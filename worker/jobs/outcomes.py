"""How a job ends, and how its attempts are written down: shared by scoring, building and
sending.

Failures are of two kinds: :class:`Transient` (database or store unreachable — the task
retries with backoff) and everything else, which ends the job in ``failed`` with its reason.
A reason is one line, ``<reason code>: <message>`` (:func:`failure_reason`; the code is the
typed exception's ``reason``, e.g. ``too-large``), never a traceback; ``/failures`` shows it and
``/metrics`` counts it by code.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from worker.db.engine import session_scope
from worker.db.models import AuditEvent, AuditEventType, Job, JobAttempt, utcnow


class Transient(Exception):
    """A failure that may pass: the task should be retried later."""


@dataclass(frozen=True)
class Outcome:
    status: str  #: done | failed | skipped (nothing to do) | superseded (another run won)
    detail: str = ""


_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
_CODED = re.compile(r"^([a-z0-9][a-z0-9-]{0,39}): ")
MAX_MESSAGE = 300


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def failure_reason(exc: BaseException, default_code: str) -> str:
    """``<reason code>: <message>`` in one line. A typed failure (a ``reason`` class attribute,
    as :class:`dicom_io.reading.UnreadableImage` has) gives its code and message; anything else
    gets ``default_code`` and names the exception's type."""
    code = getattr(exc, "reason", None)
    message = _one_line(str(exc))
    if isinstance(code, str) and _CODE.fullmatch(code):
        return f"{code}: {message or type(exc).__name__}"
    return f"{default_code}: {type(exc).__name__}" + (f": {message}" if message else "")


def coded(reason: str, default_code: str) -> str:
    """A reason as ``<code>: <message>`` in one line (a free text gets ``default_code``)."""
    line = _one_line(reason)
    return line if _CODED.match(line) else f"{default_code}: {line}"


def reason_code(reason: str) -> str:
    """The code of a ``<code>: <message>`` reason (bounded: a metric label)."""
    found = _CODED.match(reason)
    return found.group(1) if found else "other"


def worker_name(celery_name: str | None = None) -> str:
    """Who did it, for the attempts and the audit trail: the Celery worker name (or the host)
    and the process id."""
    return f"{celery_name or socket.gethostname()}:{os.getpid()}"


def end_attempt_in(session: Session, attempt_id: int, outcome: str, error: str = "") -> None:
    session.execute(
        update(JobAttempt)
        .where(JobAttempt.id == attempt_id)
        .values(finished_at=utcnow(), outcome=outcome, error=error[:2000])
    )


def end_attempt(url: str, attempt_id: int, outcome: str, error: str = "") -> None:
    with session_scope(url) as session:
        end_attempt_in(session, attempt_id, outcome, error)


def start_attempt(url: str, job_id: int, task: str, worker: str | None) -> tuple[int, int]:
    """Open an attempt; also close (as abandoned) the ones a dead process left open, and say
    how many attempts of ``task`` died so far."""
    with session_scope(url) as session:
        session.execute(
            update(JobAttempt)
            .where(
                JobAttempt.job_id == job_id,
                JobAttempt.task == task,
                JobAttempt.finished_at.is_(None),
            )
            .values(finished_at=utcnow(), outcome="abandoned")
        )
        died = session.scalar(
            select(func.count(JobAttempt.id)).where(
                JobAttempt.job_id == job_id,
                JobAttempt.task == task,
                JobAttempt.outcome == "abandoned",
            )
        )
        attempt = JobAttempt(job_id=job_id, task=task, worker=worker or worker_name())
        session.add(attempt)
        session.flush()
        return attempt.id, int(died or 0)


def failed_event(job: Job, reason: str) -> AuditEvent:
    return AuditEvent(
        event=AuditEventType.FAILED,
        actor=worker_name(),
        instance_id=job.instance_id,
        detail={"job_id": job.id, "reason": reason[:500]},
    )
