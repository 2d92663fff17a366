"""The dashboard: server-rendered pages (Jinja2), no JavaScript build, no external assets.

Log in with a token (kept in an HttpOnly, SameSite=Strict cookie, so another site cannot make
the browser post a resend); see recent instances, one instance with its overlay, joint table
and score history, and the failures with their reasons and a resend button.
"""

from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from worker.api import auth, operations, queries
from worker.db.models import Instance

InstanceId = Annotated[int, PathParam(ge=1, le=2**62)]
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
COOKIE = "rascore_token"


def add_dashboard(app: FastAPI, sessions: sessionmaker[Session]) -> None:
    def page(request: Request) -> Any:
        """The caller of a page, or a redirect to the login form."""
        token = request.cookies.get(COOKIE, "")
        with sessions() as session:
            found = auth.lookup(session, token) if token else None
            return None if found is None else (found.name, found.role)

    def render(request: Request, name: str, **context: Any) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(request, name, context)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> HTMLResponse:
        return render(request, "login.html", error=None, who=None)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: Annotated[str, Form()]) -> Response:
        with sessions() as session:
            found = auth.lookup(session, token.strip())
        if found is None:
            return render(request, "login.html", error="That token is not valid.", who=None)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            token.strip(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=12 * 3600,
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request, status: str | None = None) -> Response:
        who = page(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        from worker.db.models import InstanceStatus

        wanted = InstanceStatus(status) if status in {s.value for s in InstanceStatus} else None
        with sessions() as session, session.begin():
            queries.record_query(session, who[0], "dashboard: recent", {"status": status})
            recent = queries.list_instances(session, queries.InstanceFilter(status=wanted), 100)
        return render(request, "home.html", who=who, recent=recent, status=wanted)

    @app.get("/instances/{instance_id}", response_class=HTMLResponse, include_in_schema=False)
    def instance_page(request: Request, instance_id: InstanceId) -> Response:
        who = page(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        with sessions() as session, session.begin():
            detail = queries.instance_detail(session, instance_id)
            if detail is None:
                raise HTTPException(404, "no such instance")
            queries.record_query(session, who[0], "dashboard: instance", {}, instance_id)
            history = (  # without a patient ID there is no telling whose history it is
                queries.scores_for_patient(session, detail["patient_id"], 50)
                if detail["patient_id"]
                else []
            )
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
            return RedirectResponse("/login", status_code=303)
        with sessions() as session, session.begin():
            queries.record_query(session, who[0], "dashboard: failures", {})
            rows = queries.failures(session)
        return render(request, "failures.html", who=who, rows=rows)

    @app.post("/instances/{instance_id}/resend", include_in_schema=False)
    def resend_form(request: Request, instance_id: InstanceId) -> Response:
        who = page(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        if not auth.allows(who[1], auth.TokenRole.OPERATOR):
            raise HTTPException(403, "resending needs a token of role operator")
        with sessions() as session, session.begin():
            if session.get(Instance, instance_id) is None:
                raise HTTPException(404, "no such instance")
            operations.resend(session, instance_id, who[0])
        return RedirectResponse(f"/instances/{instance_id}?resent=1", status_code=303)
