"""The HTTP API and dashboard of the node (FastAPI), served by ``rascore serve``.

Reading needs a token of role ``read`` or ``operator``; resending and rescoring need
``operator``. A token comes as ``Authorization: Bearer …``; the dashboard's pages call the API
with the cookie of a dashboard session instead (a POST with that cookie must come from a page of
the node). Every request that returns patient data is written to the audit trail with the
token's name. ``/healthz`` and ``/metrics`` carry no patient data and need no token.

GET routes read in read-only sessions (on SQLite: no write lock, so a flood of them never makes
the SCP's C-STOREs wait); their audit row goes in its own short write transaction after the
read, and nothing is rendered or encoded inside a transaction. Exports stream their CSV page by
page, each page a keyset query in its own short read.
"""

import csv
import datetime as dt
import io
import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any

import cv2
import pydicom
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from worker.api import auth
from worker.api.dashboard import COOKIE, add_dashboard, audit_query, check_origin, session_caller
from worker.db import operations, queries
from worker.db.engine import read_session_scope, session_factory
from worker.db.models import InstanceStatus, Job, ResultObject, TokenRole
from worker.model_ref import model_ref
from worker.settings import Settings

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

    def reading() -> Iterator[Session]:
        with read_session_scope(url) as session:
            yield session

    # scope="function": the transaction ends when the endpoint returns, before the response
    # goes out. DB writes (operations); Read reads only (every GET).
    DB = Annotated[Session, Depends(db, scope="function")]
    Read = Annotated[Session, Depends(reading, scope="function")]

    def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        who = None
        if credentials:
            with read_session_scope(url) as session:
                found = auth.lookup(session, credentials.credentials)
                if found is not None:
                    who = Caller(found.name, found.role)
        elif COOKIE in request.cookies:
            if request.method not in ("GET", "HEAD"):
                check_origin(request, settings)  # a cookie is sent by a browser on any site
            live = session_caller(url, request.cookies[COOKIE], settings)
            if live is not None:
                who = Caller(live.name, live.role)
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
            with read_session_scope(url) as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        from worker.jobs.queueing import broker_health

        checks["broker"] = broker_health()
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
        session: Read, who: Reader, where: Filter, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        """Received instances, newest first, with their latest totals."""
        found = queries.list_instances(session, where, limit, offset)
        audit_query(url, who.name, "instances", where.as_dict())
        return found

    @app.get("/api/v1/studies", tags=["queries"])
    def studies(
        session: Read, who: Reader, where: Filter, limit: Limit = 50, offset: Offset = 0
    ) -> dict[str, Any]:
        found = queries.list_studies(session, where, limit, offset)
        audit_query(url, who.name, "studies", where.as_dict())
        return found

    @app.get("/api/v1/instances/{instance_id}", tags=["queries"])
    def instance(instance_id: InstanceId, session: Read, who: Reader) -> dict[str, Any]:
        """One instance: receptions, jobs and attempts, every score with its joints, result
        objects and their deliveries."""
        found = queries.instance_detail(session, instance_id)
        if found is None:
            raise HTTPException(404, "no such instance")
        audit_query(url, who.name, "instance", {}, instance_id)
        return found

    @app.get("/api/v1/instances/{instance_id}/overlay.png", tags=["queries"])
    def overlay(instance_id: InstanceId, who: Reader) -> Response:
        """The overlay Secondary Capture of the latest scoring, as PNG."""
        with read_session_scope(url) as session:
            key = session.scalar(
                select(ResultObject.store_key)
                .join(Job)
                .where(Job.instance_id == instance_id, ResultObject.kind == "sc")
                .order_by(ResultObject.id.desc())
                .limit(1)
            )
        if key is None:
            raise HTTPException(404, "no overlay for this instance")
        audit_query(url, who.name, "overlay", {}, instance_id)
        # read and encoded outside any transaction
        path = settings.effective_store_dir / key
        if not path.is_file():
            raise HTTPException(404, "the overlay's file is not in the store")
        pixels = pydicom.dcmread(path).pixel_array
        _, png = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        return Response(png.tobytes(), media_type="image/png")

    @app.get("/api/v1/patients/{patient_id}/scores", tags=["queries"])
    def patient_scores(
        patient_id: str, session: Read, who: Reader, limit: Limit = 200
    ) -> list[dict[str, Any]]:
        """Every score of one patient's images, newest first (the joints' history)."""
        found = queries.scores_for_patient(session, patient_id, limit)
        audit_query(url, who.name, "patient scores", {"patient_id": patient_id})
        return found

    @app.get("/api/v1/model", tags=["queries"])
    def model(who: Reader) -> dict[str, Any]:
        """The card of the model that scores new images now."""
        ref = model_ref(settings.model_dir)
        card: dict[str, Any] = json.loads((ref.directory / "card.json").read_text())
        card.pop("training", None)  # the epoch-by-epoch curves: in the model folder
        return card

    @app.get("/api/v1/audit", tags=["audit"])
    def audit(
        session: Read, who: Reader, where: AuditWhere, limit: Limit = 100, offset: Offset = 0
    ) -> dict[str, Any]:
        """The audit trail, newest first, this very query's row included."""
        # written (in its own short transaction) before the read, which begins at its first
        # SELECT and so sees it
        audit_query(url, who.name, "audit", where.as_dict())
        return queries.list_audit(session, where, limit, offset)

    @app.get("/api/v1/failures", tags=["queries"])
    def failures(session: Read, who: Reader) -> list[dict[str, Any]]:
        """Failed instances and deliveries with their reasons."""
        found = queries.failures(session)
        audit_query(url, who.name, "failures", {})
        return found

    @app.get("/api/v1/export/scores.csv", tags=["export"], response_class=StreamingResponse)
    def export_scores(who: Reader, where: Filter) -> StreamingResponse:
        """One row per scored joint of the instances that match, newest score first."""
        audit_query(url, who.name, "export scores", where.as_dict())  # before anything is read
        pages = _pages(lambda s, after: queries.export_scores_page(s, where, after))
        return _csv(SCORE_COLUMNS, (_score_rows(page) for page in pages), "rascore-scores.csv")

    @app.get("/api/v1/export/audit.csv", tags=["export"], response_class=StreamingResponse)
    def export_audit(who: Reader, where: AuditWhere) -> StreamingResponse:
        audit_query(url, who.name, "export audit", where.as_dict())
        pages = _pages(lambda s, after: queries.export_audit_page(s, where, after))
        return _csv(AUDIT_COLUMNS, (_audit_rows(page) for page in pages), "rascore-audit.csv")

    def _pages(
        read: Callable[[Session, int | None], list[dict[str, Any]]],
    ) -> Iterator[list[dict[str, Any]]]:
        """Keyset pages, each in its own short read-only session (no lock held between)."""
        after: int | None = None
        while True:
            with read_session_scope(url) as session:
                page = read(session, after)
            if not page:
                return
            yield page
            after = page[-1]["id"]

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
        from worker.jobs.queueing import enqueue_score

        with sessions() as session, session.begin():
            _exists(session, instance_id)
            ref = model_ref(settings.model_dir)
            job_id = operations.rescore(session, instance_id, ref, who.name)
        if job_id is not None:
            enqueue_score(url, job_id)  # committed first; if the broker is down, the sweeper
        return {"job_id": job_id, "queued": job_id is not None}

    add_dashboard(app, settings)
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


SCORE_COLUMNS = [
    "instance_id", "sop_instance_uid", "patient_id", "accession_number", "study_date",
    "model_version", "scored_at", "label", "jsn", "erosion", "box_x", "box_y", "box_w", "box_h",
    "assessable", "reason", "joints_scored",
]  # fmt: skip
AUDIT_COLUMNS = ["id", "at", "event", "actor", "instance_id", "detail"]
#: a spreadsheet takes a cell starting with one of these for a formula (OWASP, CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: int | None) -> str | int:
    """A grade as a CSV cell: empty for none."""
    return "" if value is None else value


def _safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading quote (a Patient
    ID or an AE title comes from any sender); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _score_rows(page: list[dict[str, Any]]) -> Iterator[list[Any]]:
    for score in page:
        for joint in score["joints"]:
            yield [
                score["instance_id"], score["sop_instance_uid"], score["patient_id"],
                score["accession_number"], score["study_date"], score["model"]["version"],
                score["scored_at"], joint["label"],
                # empty grades, never a guess, for a joint that is not assessable
                _cell(joint["jsn"]), _cell(joint["erosion"]), *joint["box"],
                "yes" if joint["assessable"] else "no", joint["reason"] or "",
                score["totals"]["joints_scored"],
            ]  # fmt: skip


def _audit_rows(page: list[dict[str, Any]]) -> Iterator[list[Any]]:
    for e in page:
        yield [
            e["id"], e["at"], e["event"], e["actor"], e["instance_id"],
            json.dumps(e["detail"], sort_keys=True),
        ]  # fmt: skip


def _csv(columns: list[str], pages: Iterable[Iterable[list[Any]]], name: str) -> StreamingResponse:
    """A CSV streamed one chunk per page: the whole file is never in memory."""

    def chunks() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        yield out.getvalue()
        for rows in pages:
            out.seek(0)
            out.truncate()
            writer.writerows([_safe(v) for v in row] for row in rows)
            yield out.getvalue()

    return StreamingResponse(
        chunks(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
