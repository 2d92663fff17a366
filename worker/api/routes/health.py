"""``/healthz`` and ``/metrics``: no patient data, no token."""

import shutil
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy import text

from worker.api.deps import AppSettings
from worker.db.engine import read_session_scope

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(response: Response, settings: AppSettings) -> dict[str, Any]:
    """Database, broker and spool space; 503 when one of them is not well."""
    from worker.jobs.queueing import broker_health

    checks: dict[str, Any] = {}
    try:
        with read_session_scope(settings.effective_database_url) as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    checks["broker"] = broker_health()
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(settings.spool_dir).free // (1024 * 1024)
    checks["spool_free_mb"] = free_mb
    healthy = (
        checks["database"] == "ok" and checks["broker"] == "ok" and free_mb >= settings.min_free_mb
    )
    checks["status"] = "ok" if healthy else "degraded"
    response.status_code = 200 if healthy else 503
    return checks


@router.get("/metrics", response_class=PlainTextResponse)
def metrics() -> Response:
    """Prometheus text format: counters, stage latency histograms, queue depths."""
    from worker.api.metrics_export import render

    body, content_type = render()
    return Response(body, media_type=content_type)
