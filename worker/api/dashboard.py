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

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from worker.api.deps import (
    COOKIE,
    AppSettings,
    InstanceId,
    Url,
    audit_query,
    check_origin,
    require_instance,
    session_caller,
)
from worker.api.patient_page import patient_context
from worker.api.routes.instances import mark_active_model
from worker.db import operations, queries, tokens
from worker.db.engine import read_session_scope, session_scope
from worker.db.models import InstanceStatus, TokenRole
from worker.models_home import active_model_version
from worker.settings import Settings

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

router = APIRouter(include_in_schema=False)


def _page(request: Request, settings: Settings) -> tuple[str, TokenRole] | None:
    """The caller of a page (token name and role), or None: log in first."""
    url = settings.effective_database_url
    found = session_caller(url, request.cookies.get(COOKIE, ""), settings)
    return None if found is None else (found.name, found.role)


def _render(request: Request, name: str, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, context)


def _to_login() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _render(request, "login.html", error=None, who=None)


@router.post("/login")
def login(
    request: Request, token: Annotated[str, Form()], settings: AppSettings, url: Url
) -> Response:
    check_origin(request, settings)
    lifetime = dt.timedelta(hours=settings.dashboard_session_hours)
    with read_session_scope(url) as session:
        found = tokens.lookup(session, token.strip())
        if found is not None:
            session.expunge(found)
    if found is None:
        return _render(request, "login.html", error="That token is not valid.", who=None)
    with session_scope(url) as session:
        secret = tokens.open_session(session, found, lifetime)
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


@router.post("/logout")
def logout(request: Request, settings: AppSettings, url: Url) -> Response:
    check_origin(request, settings)
    secret = request.cookies.get(COOKIE, "")
    if secret:
        with session_scope(url) as session:
            tokens.close_session(session, secret)
    return _to_login()


@router.get("/", response_class=HTMLResponse)
def home(request: Request, settings: AppSettings, url: Url, status: str | None = None) -> Response:
    who = _page(request, settings)
    if who is None:
        return _to_login()
    wanted = InstanceStatus(status) if status in {s.value for s in InstanceStatus} else None
    with read_session_scope(url) as session:
        recent = queries.list_instances(session, queries.InstanceFilter(status=wanted), 100)
    audit_query(url, who[0], "dashboard: recent", {"status": status})
    return _render(request, "home.html", who=who, recent=recent, status=wanted)


@router.get("/instances/{instance_id}", response_class=HTMLResponse)
def instance_page(
    request: Request, instance_id: InstanceId, settings: AppSettings, url: Url
) -> Response:
    who = _page(request, settings)
    if who is None:
        return _to_login()
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
    mark_active_model(detail, active_model_version(settings))
    by_model = list(reversed(detail["scores"]))  # every model's score, newest first
    # the joints shown are the active model's, or the newest score's when it has none yet
    shown = next((s for s in by_model if s["active_model"]), by_model[0] if by_model else None)
    return _render(
        request,
        "instance.html",
        who=who,
        i=detail,
        latest=shown,
        by_model=by_model,
        history=history,
        has_overlay=has_overlay,
    )


@router.get("/patients/{patient_id:path}", response_class=HTMLResponse)
def patient_page(
    request: Request, patient_id: str, settings: AppSettings, url: Url, issuer: str | None = None
) -> Response:
    """The patient's JSN, erosion and total over time (:mod:`worker.api.patient_page`)."""
    who = _page(request, settings)
    if who is None:
        return _to_login()
    context = patient_context(url, patient_id, issuer)
    audit_query(url, who[0], "dashboard: patient", {"patient_id": patient_id, "issuer": issuer})
    return _render(request, "patient.html", who=who, **context)


@router.get("/failures", response_class=HTMLResponse)
def failures_page(request: Request, settings: AppSettings, url: Url) -> Response:
    who = _page(request, settings)
    if who is None:
        return _to_login()
    with read_session_scope(url) as session:
        rows = queries.failures(session)
    audit_query(url, who[0], "dashboard: failures", {})
    return _render(request, "failures.html", who=who, rows=rows)


@router.post("/instances/{instance_id}/resend")
def resend_form(
    request: Request, instance_id: InstanceId, settings: AppSettings, url: Url
) -> Response:
    check_origin(request, settings)
    who = _page(request, settings)
    if who is None:
        return _to_login()
    if not tokens.allows(who[1], TokenRole.OPERATOR):
        raise HTTPException(403, "resending needs a token of role operator")
    with session_scope(url) as session:
        require_instance(session, instance_id)
        operations.resend(session, instance_id, who[0])
    return RedirectResponse(f"/instances/{instance_id}?resent=1", status_code=303)
