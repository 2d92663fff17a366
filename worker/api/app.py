"""The HTTP API and dashboard of the node (FastAPI), served by ``rascore serve``.

Reading needs a token of role ``read`` or ``operator``; resending and rescoring need
``operator``. A token comes as ``Authorization: Bearer …`` or, for the dashboard, in the cookie
its login form sets. Every request that returns patient data is written to the audit trail with
the token's name. ``/healthz`` and ``/metrics`` carry no patient data and need no token.
"""

import csv
import datetime as dt
import io
import json
import shutil
from collections.abc import Iterator
from typing import Annotated, Any

import cv2
import pydicom
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from worker.api import auth, operations, queries
from worker.db.engine import read_session_scope, session_factory
from worker.db.models import InstanceStatus, Job, ResultObject, TokenRole
from worker.model_ref import model_ref
from worker.settings import Settings

COOKIE = "rascore_token"
_bearer = HTTPBearer(auto_error=False, description="A token made by `rascore token create`.")


class Caller:
    """Who is asking: the token's name (for the audit trail) and role."""

    def __init__(self, name: str, role: TokenRole) -> None:
        self.name = name
        self.role = role


def create_app(settings: Settings) -> FastAPI:
    url = settings.effective_database_url
    sessions = session_factory(url)
    app = FastAPI(
        title="rascore",
        version="1",
        description="Audit queries and operations of a rascore node. Scores come from a model "
        "trained on synthetic phantoms and healthy hands, not validated on RA radiographs: "
        "NOT FOR DIAGNOSTIC USE.",
    )
    app.state.settings = settings

    def db() -> Iterator[Session]:
        with sessions() as session, session.begin():
            yield session

    # scope="function": the transaction (and SQLite's write lock) ends when the endpoint
    # returns, before the response goes out, and the audit row is committed before the data
    DB = Annotated[Session, Depends(db, scope="function")]

    def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        token = credentials.credentials if credentials else request.cookies.get(COOKIE, "")
        who = None
        if token:
            with read_session_scope(url) as session:
                found = auth.lookup(session, token)
                if found is not None:
                    who = Caller(found.name, found.role)
        if who is None:
            raise HTTPException(
                401, "a valid bearer token is needed", {"WWW-Authenticate": "Bearer"}
            )
        return who

    def operator(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if not auth.allows(who.role, TokenRole.OPERATOR):
            raise HTTPException(403, "this needs a token of role operator")
        return who

    Reader = Annotated[Caller, Depends(caller)]
    Operator = Annotated[Caller, Depends(operator)]

    def instance_filter(
        patient_id: str | None = None,
        accession_number: str | None = None,
        study_date_from: dt.date | None = None,
        study_date_to: dt.date | None = None,
        status: InstanceStatus | None = None,
        model_version: str | None = None,
        calling_ae: str | None = None,
    ) -> queries.InstanceFilter:
        return queries.InstanceFilter(
            patient_id,
            accession_number,
            study_date_from,
            study_date_to,
            status,
            model_version,
            calling_ae,
        )

    Filter = Annotated[queries.InstanceFilter, Depends(instance_filter)]
    Limit = Annotated[int, Query(ge=1, le=queries.MAX_PAGE)]
    Offset = Annotated[int, Query(ge=0, le=10**9)]

    def audit_filter(
        event: str | None = None,
        actor: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        instance_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    ) -> queries.AuditFilter:
        return queries.AuditFilter(event, actor, _utc(since), _utc(until), instance_id)

    AuditWhere = Annotated[queries.AuditFilter, Depends(audit_filter)]
    InstanceId = Annotated[int, PathParam(ge=1, le=2**62)]

    # -- health and metrics ------------------------------------------------------------------

    @app.get("/healthz", tags=["operations"])
    def healthz(response: Response) -> dict[str, Any]:
        """Database, broker and spool space; 503 when one of them is not well."""
        checks: dict[str, Any] = {}
        try:
            with sessions() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        checks["broker"] = _broker_health()
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        free_mb = shutil.disk_usage(settings.spool_dir).free // (1024 * 1024)
        checks["spool_free_mb"] = free_mb
        healthy = (
            checks["database"] == "ok"
            and checks["broker"] == "ok"
            and free_mb >= settings.min_free_mb
        )
        checks["status"] = "ok" if healthy else "degraded"
        response.status_code = 200 if healthy else 503
        return checks

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus text format: counters, stage latency histograms, queue depths."""
        from worker.api.metrics_export import render

        body, content_type = render()
        return Response(body, media_type=content_type)

    # -- queries -----------------------------------------------------------------------------

    @app.get("/api/v1/instances", tags=["queries"])
    def instances(
        session: DB, who: Reader, where: Filter, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        """Received instances, newest first, with their latest totals."""
        queries.record_query(session, who.name, "instances", where.as_dict())
        return queries.list_instances(session, where, limit, offset)

    @app.get("/api/v1/studies", tags=["queries"])
    def studies(
        session: DB, who: Reader, where: Filter, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        queries.record_query(session, who.name, "studies", where.as_dict())
        return queries.list_studies(session, where, limit, offset)

    @app.get("/api/v1/instances/{instance_id}", tags=["queries"])
    def instance(instance_id: InstanceId, session: DB, who: Reader) -> dict[str, Any]:
        """One instance: receptions, jobs and attempts, every score with its joints, result
        objects and their deliveries."""
        found = queries.instance_detail(session, instance_id)
        if found is None:
            raise HTTPException(404, "no such instance")
        queries.record_query(session, who.name, "instance", {}, instance_id)
        return found

    @app.get("/api/v1/instances/{instance_id}/overlay.png", tags=["queries"])
    def overlay(instance_id: InstanceId, session: DB, who: Reader) -> Response:
        """The overlay Secondary Capture of the latest scoring, as PNG."""
        result = session.scalar(
            select(ResultObject)
            .join(Job)
            .where(Job.instance_id == instance_id, ResultObject.kind == "sc")
            .order_by(ResultObject.id.desc())
            .limit(1)
        )
        if result is None:
            raise HTTPException(404, "no overlay for this instance")
        queries.record_query(session, who.name, "overlay", {}, instance_id)
        path = settings.effective_store_dir / result.store_key
        if not path.is_file():
            raise HTTPException(404, "the overlay's file is not in the store")
        pixels = pydicom.dcmread(path).pixel_array
        _, png = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        return Response(png.tobytes(), media_type="image/png")

    @app.get("/api/v1/patients/{patient_id}/scores", tags=["queries"])
    def patient_scores(
        patient_id: str, session: DB, who: Reader, limit: Limit = 200
    ) -> list[dict[str, Any]]:
        """Every score of one patient's images, newest first (the joints' history)."""
        queries.record_query(session, who.name, "patient scores", {"patient_id": patient_id})
        return queries.scores_for_patient(session, patient_id, limit)

    @app.get("/api/v1/model", tags=["queries"])
    def model(who: Reader) -> dict[str, Any]:
        """The card of the model that scores new images now."""
        ref = model_ref(settings.model_dir)
        card: dict[str, Any] = json.loads((ref.directory / "card.json").read_text())
        card.pop("training", None)  # the epoch-by-epoch curves: in the model folder
        return card

    @app.get("/api/v1/audit", tags=["audit"])
    def audit(
        session: DB, who: Reader, where: AuditWhere, limit: Limit = 100, offset: Offset = 0
    ) -> dict[str, Any]:
        """The audit trail, newest first."""
        queries.record_query(session, who.name, "audit", where.as_dict())
        return queries.list_audit(session, where, limit, offset)

    @app.get("/api/v1/failures", tags=["queries"])
    def failures(session: DB, who: Reader) -> list[dict[str, Any]]:
        """Failed instances and deliveries with their reasons."""
        queries.record_query(session, who.name, "failures", {})
        return queries.failures(session)

    @app.get("/api/v1/export/scores.csv", tags=["export"], response_class=StreamingResponse)
    def export_scores(session: DB, who: Reader, where: Filter) -> StreamingResponse:
        """One row per scored joint of the instances that match."""
        queries.record_query(session, who.name, "export scores", where.as_dict())
        session.commit()  # audited before anything is read
        with read_session_scope(url) as reading:
            return _csv(_scores_csv(reading, where), "rascore-scores.csv")

    @app.get("/api/v1/export/audit.csv", tags=["export"], response_class=StreamingResponse)
    def export_audit(session: DB, who: Reader, where: AuditWhere) -> StreamingResponse:
        queries.record_query(session, who.name, "export audit", where.as_dict())
        session.commit()
        with read_session_scope(url) as reading:
            return _csv(_audit_csv(reading, where), "rascore-audit.csv")

    def _scores_csv(session: Session, where: queries.InstanceFilter) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                "instance_id", "sop_instance_uid", "patient_id", "accession_number",
                "study_date", "model_version", "scored_at", "label", "jsn", "erosion",
                "box_x", "box_y", "box_w", "box_h", "assessable", "reason", "joints_scored",
            ]
        )  # fmt: skip
        offset = 0
        while page := queries.scores(session, where, queries.MAX_PAGE, offset):
            for score in page:
                for joint in score["joints"]:
                    writer.writerow(
                        [
                            score["instance_id"], score["sop_instance_uid"], score["patient_id"],
                            score["accession_number"], score["study_date"],
                            score["model"]["version"], score["scored_at"], joint["label"],
                            # empty grades, never a guess, for a joint that is not assessable
                            _cell(joint["jsn"]), _cell(joint["erosion"]), *joint["box"],
                            "yes" if joint["assessable"] else "no", joint["reason"] or "",
                            score["totals"]["joints_scored"],
                        ]
                    )  # fmt: skip
            offset += len(page)
        return out.getvalue()

    def _audit_csv(session: Session, where: queries.AuditFilter) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["id", "at", "event", "actor", "instance_id", "detail"])
        offset = 0
        while True:
            page = queries.list_audit(session, where, queries.MAX_PAGE, offset)
            for e in page["items"]:
                writer.writerow(
                    [e["id"], e["at"], e["event"], e["actor"], e["instance_id"],
                     json.dumps(e["detail"], sort_keys=True)]
                )  # fmt: skip
            offset += queries.MAX_PAGE
            if offset >= page["total"]:
                break
        return out.getvalue()

    # -- operations --------------------------------------------------------------------------

    @app.post("/api/v1/instances/{instance_id}/resend", tags=["operations"])
    def resend_results(instance_id: InstanceId, session: DB, who: Operator) -> dict[str, Any]:
        """Send the instance's result objects to every destination again (the node's sweeper
        sends them within seconds)."""
        _exists(session, instance_id)
        return {"deliveries": operations.resend(session, instance_id, who.name)}

    @app.post("/api/v1/instances/{instance_id}/rescore", tags=["operations"])
    def rescore(instance_id: InstanceId, who: Operator) -> dict[str, Any]:
        """Score the instance with the current model (a no-op if that model already did)."""
        from worker.queueing import enqueue_score

        with sessions() as session, session.begin():
            _exists(session, instance_id)
            ref = model_ref(settings.model_dir)
            job_id = operations.rescore(session, instance_id, ref, who.name)
        if job_id is not None:
            enqueue_score(url, job_id)  # committed first; if the broker is down, the sweeper
        return {"job_id": job_id, "queued": job_id is not None}

    from worker.api.dashboard import add_dashboard

    add_dashboard(app, sessions)
    return app


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Times compare in UTC (SQLite keeps no zone): a naive time is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _exists(session: Session, instance_id: int) -> None:
    from worker.db.models import Instance

    if session.get(Instance, instance_id) is None:
        raise HTTPException(404, "no such instance")


def _cell(value: int | None) -> str | int:
    """A grade as a CSV cell: empty for none."""
    return "" if value is None else value


def _csv(body: str, name: str) -> StreamingResponse:
    return StreamingResponse(
        iter([body]),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _broker_health() -> str:
    from worker.celery_app import app as celery

    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
