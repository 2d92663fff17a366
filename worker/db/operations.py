"""What an operator may do to an instance: send its results again, score it again."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.db.models import (
    AuditEvent,
    AuditEventType,
    Delivery,
    Instance,
    InstanceStatus,
    Job,
    JobAttempt,
    JobStatus,
    ResultObject,
    utcnow,
)
from worker.db.outbox import make_due
from worker.db.queries import failed_builds
from worker.model_ref import ModelRef


def resend(session: Session, instance_id: int, actor: str) -> list[int]:
    """Every delivery of the instance's results becomes due now, and a job whose build failed
    is due to be built again (the sweeper queues it within seconds); returns the deliveries'
    ids."""
    result_ids = select(ResultObject.id).join(Job).where(Job.instance_id == instance_id)
    ids = make_due(session, Delivery.result_id.in_(result_ids))
    rebuild = rebuild_failed(session, instance_id)
    session.add(
        AuditEvent(
            event=AuditEventType.RESEND,
            actor=actor,
            instance_id=instance_id,
            detail={"deliveries": ids, **({"rebuild_jobs": rebuild} if rebuild else {})},
        )
    )
    return ids


def rebuild_failed(session: Session, instance_id: int) -> list[int]:
    """The instance's scored jobs whose last build failed become unbuilt (the scores stay);
    returns their ids."""
    jobs = session.scalars(
        select(Job)
        .join(JobAttempt, JobAttempt.job_id == Job.id)
        .where(
            Job.instance_id == instance_id,
            Job.status == JobStatus.DONE,
            JobAttempt.id.in_(failed_builds()),
        )
    ).all()
    for job in jobs:
        job.built_at, job.enqueued_at = None, None
        job.reason = job.score.status if job.score is not None else ""
    return [job.id for job in jobs]


def rescore(session: Session, instance_id: int, model: ModelRef, actor: str) -> int | None:
    """A job for the current model (a failed one is tried again); returns the job id to queue,
    or None when the current model already scored the instance."""
    instance = session.get_one(Instance, instance_id)
    job = session.scalar(
        select(Job).where(Job.instance_id == instance_id, Job.model_version == model.version)
    )
    if job is not None and job.status in (JobStatus.DONE, JobStatus.QUEUED, JobStatus.RUNNING):
        return None
    if job is None:
        job = Job(
            instance_id=instance_id,
            model_name=model.name,
            model_version=model.version,
            status=JobStatus.QUEUED,
            enqueued_at=utcnow(),  # published after the commit (cleared if that fails)
        )
        session.add(job)
    else:
        job.status, job.reason, job.finished_at = JobStatus.QUEUED, "", None
        job.enqueued_at = utcnow()
    instance.status, instance.reason = InstanceStatus.QUEUED, ""
    session.flush()
    session.add(
        AuditEvent(
            event=AuditEventType.REQUEUED,
            actor=actor,
            instance_id=instance_id,
            detail={"job_id": job.id, "model_version": model.version},
        )
    )
    return job.id
