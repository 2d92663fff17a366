"""The dashboard: server-rendered pages (Jinja2), no JavaScript build, no external assets.

Log in with a token: the node opens a server-side session and the browser keeps only its random
secret (an HttpOnly, SameSite=Strict cookie). A session ends at logout, after
``RASCORE_DASHBOARD_IDLE_MINUTES`` without a request, ``RASCORE_DASHBOARD_SESSION_HOURS`` after
the login, or when its token is revoked. Every POST must come from a page of the node (Origin or
Referer naming the Host), so another site cannot log a browser in or out or make it resend.

Pages read in read-only sessions (on SQLite: no write lock, so the SCP never waits on a page);
the audit row of a page is written after the read, in its own short transaction.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from worker.api import auth
from worker.db import operations, queries
from worker.db.engine import read_session_scope, session_scope
from worker.db.models import Instance, InstanceStatus, TokenRole
from worker.settings import Settings

InstanceId = Annotated[int, PathParam(ge=1, le=2**62)]
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
COOKIE = "rascore_session"


def audit_query(
    url: str, actor: str, what: str, params: dict[str, Any], instance_id: int | None = None
) -> None:
    """The audit row of a query, in its own short write transaction (after the read)."""
    with session_scope(url) as session:
        queries.record_query(session, actor, what, params, instance_id)


def session_caller(url: str, secret: str, settings: Settings) -> auth.SessionCaller | None:
    """The live session of a cookie, read without the write lock; its last-seen time is
    written (briefly) at most once a minute."""
    if not secret:
        return None
    idle = dt.timedelta(minutes=settings.dashboard_idle_minutes)
    with read_session_scope(url) as session:
        found = auth.lookup_session(session, secret, idle)
    if found is not None and found.touch:
        with session_scope(url) as session:
            auth.touch_session(session, found.id)
    return found


def check_origin(request: Request, settings: Settings) -> None:
    """403 for a state-changing request from another site."""
    if not auth.same_origin(request.headers, settings.dashboard_origin_list):
        raise HTTPException(403, "this request did not come from a page of this node")


def add_dashboard(app: FastAPI, settings: Settings) -> None:
    url = settings.effective_database_url
    lifetime = dt.timedelta(hours=settings.dashboard_session_hours)

    def page(request: Request) -> tuple[str, TokenRole] | None:
        """The caller of a page (token name and role), or None: log in first."""
        found = session_caller(url, request.cookies.get(COOKIE, ""), settings)
        return None if found is None else (found.name, found.role)

    def render(request: Request, name: str, **context: Any) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, name, context)

    def to_login() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> HTMLResponse:
        return render(request, "login.html", error=None, who=None)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: Annotated[str, Form()]) -> Response:
        check_origin(request, settings)
        with read_session_scope(url) as session:
            found = auth.lookup(session, token.strip())
            if found is not None:
                session.expunge(found)
        if found is None:
            return render(request, "login.html", error="That token is not valid.", who=None)
        with session_scope(url) as session:
            secret = auth.open_session(session, found, lifetime)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            secret,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=int(lifetime.total_seconds()),
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        check_origin(request, settings)
        secret = request.cookies.get(COOKIE, "")
        if secret:
            with session_scope(url) as session:
                auth.close_session(session, secret)
        return to_login()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request, status: str | None = None) -> Response:
        who = page(request)
        if who is None:
            return to_login()
        wanted = InstanceStatus(status) if status in {s.value for s in InstanceStatus} else None
        with read_session_scope(url) as session:
            recent = queries.list_instances(session, queries.InstanceFilter(status=wanted), 100)
        audit_query(url, who[0], "dashboard: recent", {"status": status})
        return render(request, "home.html", who=who, recent=recent, status=wanted)

    @app.get("/instances/{instance_id}", response_class=HTMLResponse, include_in_schema=False)
    def instance_page(request: Request, instance_id: InstanceId) -> Response:
        who = page(request)
        if who is None:
            return to_login()
        with read_session_scope(url) as session:
            detail = queries.instance_detail(session, instance_id)
            if detail is None:
                raise HTTPException(404, "no such instance")
            history = (  # without a patient ID there is no telling whose history it is
                queries.scores_for_patient(session, detail["patient_id"], 50)
                if detail["patient_id"]
                else []
            )
        audit_query(url, who[0], "dashboard: instance", {}, instance_id)
        has_overlay = any(r["kind"] == "sc" for j in detail["jobs"] for r in j["results"])
        return render(
            request,
            "instance.html",
            who=who,
            i=detail,
            latest=detail["scores"][-1] if detail["scores"] else None,
            history=history,
            has_overlay=has_overlay,
        )

    @app.get("/failures", response_class=HTMLResponse, include_in_schema=False)
    def failures_page(request: Request) -> Response:
        who = page(request)
        if who is None:
            return to_login()
        with read_session_scope(url) as session:
            rows = queries.failures(session)
        audit_query(url, who[0], "dashboard: failures", {})
        return render(request, "failures.html", who=who, rows=rows)

    @app.post("/instances/{instance_id}/resend", include_in_schema=False)
    def resend_form(request: Request, instance_id: InstanceId) -> Response:
        check_origin(request, settings)
        who = page(request)
        if who is None:
            return to_login()
        if not auth.allows(who[1], TokenRole.OPERATOR):
            raise HTTPException(403, "resending needs a token of role operator")
        with session_scope(url) as session:
            if session.get(Instance, instance_id) is None:
                raise HTTPException(404, "no such instance")
            operations.resend(session, instance_id, who[0])
        return RedirectResponse(f"/instances/{instance_id}?resent=1", status_code=303)
