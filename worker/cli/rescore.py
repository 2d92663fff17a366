"""``rascore rescore``: score the stored images of a time window again, with another model.

One new job per instance and model (jobs are unique per instance and model version, so running
it twice queues nothing new); the old scores stay, each naming its model. The jobs are made by
:func:`worker.db.operations.rescore`, as the API's ``POST /instances/{id}/rescore`` makes them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer

from worker.cli.common import err, fail
from worker.settings import Settings

#: instances per transaction
BATCH = 200


def _when(text: str, option: str, end_of_day: bool = False) -> dt.datetime:
    """An ISO date or time (UTC unless it says); a bare date as ``--until`` takes in the day."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option}: {text!r} is not an ISO date or time") from None
    if end_of_day and len(text) <= 10:
        value += dt.timedelta(days=1)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def rescore(
    since: Annotated[str, typer.Option(help="Received at or after (ISO date or time, UTC).")],
    until: Annotated[
        str | None, typer.Option(help="Received before (a bare date: to the end of that day).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model version (default: the active one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Score again every stored image received in the window (hand radiographs that were
    queued, scored or failed; skipped ones stay skipped), with the active or given model."""
    from sqlalchemy.exc import SQLAlchemyError

    from worker.model_ref import ModelRefused, model_ref
    from worker.models_home import active_model_dir, model_dir_for

    start = _when(since, "--since")
    end = _when(until, "--until", end_of_day=True) if until else None
    if end is not None and end <= start:
        raise fail("--until must be after --since")
    settings = Settings()
    try:
        directory = model_dir_for(settings.home, model) if model else active_model_dir(settings)
        ref = model_ref(directory)
    except ModelRefused as exc:
        raise fail(str(exc)) from None
    try:
        queued, unchanged = _make_jobs(settings, ref, start, end)
    except SQLAlchemyError as exc:
        raise fail(f"database: {str(exc).splitlines()[0][:200]}") from None
    published = _publish(settings, [job for _, job in queued])
    summary: dict[str, Any] = {
        "model": {"name": ref.name, "version": ref.version},
        "since": start.isoformat(),
        "until": end.isoformat() if end else None,
        "jobs": [{"instance_id": i, "job_id": j} for i, j in queued],
        "unchanged": unchanged,
        "published": published,
    }
    if as_json:
        print(json.dumps(summary, indent=1))
    err.print(
        f"{len(queued)} image(s) queued for model {ref.version}; {len(unchanged)} had a job of "
        f"it already" + ("" if published else "; the node's sweeper queues them within seconds")
    )


def _make_jobs(
    settings: Settings, ref: Any, start: dt.datetime, end: dt.datetime | None
) -> tuple[list[tuple[int, int]], list[int]]:
    """(instance, new job) pairs and the instances the model has a live or done job for."""
    import getpass

    from sqlalchemy import select

    from worker.db import operations
    from worker.db.engine import session_scope
    from worker.db.models import Instance, InstanceStatus

    wanted = (InstanceStatus.QUEUED, InstanceStatus.SCORED, InstanceStatus.FAILED)
    query = select(Instance.id).where(Instance.received_at >= start, Instance.status.in_(wanted))
    if end is not None:
        query = query.where(Instance.received_at < end)
    url = settings.effective_database_url
    with session_scope(url) as session:
        ids = list(session.scalars(query.order_by(Instance.id)))
    actor = f"cli:{getpass.getuser()}"
    queued: list[tuple[int, int]] = []
    unchanged: list[int] = []
    for first in range(0, len(ids), BATCH):
        with session_scope(url) as session:
            for instance_id in ids[first : first + BATCH]:
                job_id = operations.rescore(session, instance_id, ref, actor)
                if job_id is None:
                    unchanged.append(instance_id)
                else:
                    queued.append((instance_id, job_id))
    return queued, unchanged


def _publish(settings: Settings, job_ids: list[int]) -> bool:
    """Put the jobs on the node's broker when it is named (``RASCORE_BROKER_URL``); with the
    embedded broker (or a failed publish) they are left to the node's sweeper, which publishes
    every job not on the broker within seconds."""
    from sqlalchemy import update

    from worker.db.engine import session_scope
    from worker.db.models import Job

    if not job_ids:
        return True
    if settings.broker_url:
        from worker.jobs.celery_app import configure
        from worker.jobs.queueing import enqueue_score

        configure(settings)
        return all([enqueue_score(settings.effective_database_url, j) for j in job_ids])
    with session_scope(settings.effective_database_url) as session:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=None))
    return False
