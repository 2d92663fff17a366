"""``/api/v1/instances``: received instances, one in detail, its overlay, and what an operator
may do to it (send its results again, score it again)."""

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from worker.api.deps import (
    DB,
    AppSettings,
    Filter,
    InstanceId,
    Limit,
    Offset,
    Operator,
    Read,
    Reader,
    Url,
    audit_query,
    require_instance,
)
from worker.db import operations, queries
from worker.db.engine import read_session_scope
from worker.model_ref import model_ref
from worker.models_home import active_model_dir, active_model_version
from worker.png import overlay_png

router = APIRouter(prefix="/api/v1/instances")


def mark_active_model(detail: dict[str, Any], active: str) -> None:
    """Which of an instance's scores (and jobs) the model that scores new images made."""
    detail["active_model_version"] = active
    for item in (*detail["scores"], *detail["jobs"]):
        version = item["model"]["version"] if "model" in item else item["model_version"]
        item["active_model"] = version == active


@router.get("", tags=["queries"])
def instances(
    session: Read, who: Reader, where: Filter, url: Url, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Received instances, newest first, with their latest totals."""
    found = queries.list_instances(session, where, limit, offset)
    audit_query(url, who.name, "instances", where.as_dict())
    return found


@router.get("/{instance_id}", tags=["queries"])
def instance(
    instance_id: InstanceId, session: Read, who: Reader, url: Url, settings: AppSettings
) -> dict[str, Any]:
    """One instance: receptions, jobs and attempts, every score (oldest first) with its model
    and joints, the one by the active model marked, result objects and their deliveries."""
    found = queries.instance_detail(session, instance_id)
    if found is None:
        raise HTTPException(404, "no such instance")
    mark_active_model(found, active_model_version(settings))
    audit_query(url, who.name, "instance", {}, instance_id)
    return found


@router.get("/{instance_id}/overlay.png", tags=["queries"])
def overlay(instance_id: InstanceId, who: Reader, settings: AppSettings) -> Response:
    """The overlay Secondary Capture of the latest scoring, as PNG."""
    url = settings.effective_database_url
    with read_session_scope(url) as session:
        key = queries.latest_overlay_key(session, instance_id)
    if key is None:
        raise HTTPException(404, "no overlay for this instance")
    audit_query(url, who.name, "overlay", {}, instance_id)
    # read and encoded outside any transaction
    path = settings.effective_store_dir / key
    if not path.is_file():
        raise HTTPException(404, "the overlay's file is not in the store")
    return Response(overlay_png(path), media_type="image/png")


@router.post("/{instance_id}/resend", tags=["operations"])
def resend_results(instance_id: InstanceId, session: DB, who: Operator) -> dict[str, Any]:
    """Send the instance's result objects to every destination again (the node's sweeper
    sends them within seconds)."""
    require_instance(session, instance_id)
    return {"deliveries": operations.resend(session, instance_id, who.name)}


@router.post("/{instance_id}/rescore", tags=["operations"])
def rescore(
    instance_id: InstanceId, who: Operator, request: Request, settings: AppSettings
) -> dict[str, Any]:
    """Score the instance with the current model (a no-op if that model already did)."""
    from worker.jobs.queueing import enqueue_score

    with request.app.state.sessions() as session, session.begin():
        require_instance(session, instance_id)
        ref = model_ref(active_model_dir(settings))
        job_id = operations.rescore(session, instance_id, ref, who.name)
    if job_id is not None:
        # committed first; if the broker is down, the sweeper publishes it
        enqueue_score(settings.effective_database_url, job_id)
    return {"job_id": job_id, "queued": job_id is not None}
