"""What the routes depend on: the settings and database sessions of the app, who is asking, and
the filters and paths the routes share (FastAPI dependencies, found through ``app.state``).

GET routes read in read-only sessions (on SQLite: no write lock, so a flood of them never makes
the SCP's C-STOREs wait); their audit row goes in its own short write transaction after the
read (:func:`audit_query`).
"""

import datetime as dt
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from worker.api.origin import same_origin
from worker.db import queries, tokens
from worker.db.engine import read_session_scope, session_scope
from worker.db.models import Instance, InstanceStatus, TokenRole
from worker.settings import Settings

COOKIE = "rascore_session"
_bearer = HTTPBearer(auto_error=False, description="A token made by `rascore token create`.")


class Caller:
    """Who is asking: the token's name (for the audit trail) and role."""

    def __init__(self, name: str, role: TokenRole) -> None:
        self.name = name
        self.role = role


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(app_settings)]


def database_url(settings: AppSettings) -> str:
    return settings.effective_database_url


Url = Annotated[str, Depends(database_url)]


def _db(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session, session.begin():
        yield session


def _reading(url: Url) -> Iterator[Session]:
    with read_session_scope(url) as session:
        yield session


# scope="function": the transaction ends when the endpoint returns, before the response
# goes out. DB writes (operations); Read reads only (every GET).
DB = Annotated[Session, Depends(_db, scope="function")]
Read = Annotated[Session, Depends(_reading, scope="function")]


def audit_query(
    url: str, actor: str, what: str, params: dict[str, Any], instance_id: int | None = None
) -> None:
    """The audit row of a query, in its own short write transaction (after the read)."""
    with session_scope(url) as session:
        queries.record_query(session, actor, what, params, instance_id)


def session_caller(url: str, secret: str, settings: Settings) -> tokens.SessionCaller | None:
    """The live session of a cookie, read without the write lock; its last-seen time is
    written (briefly) at most once a minute."""
    if not secret:
        return None
    idle = dt.timedelta(minutes=settings.dashboard_idle_minutes)
    with read_session_scope(url) as session:
        found = tokens.lookup_session(session, secret, idle)
    if found is not None and found.touch:
        with session_scope(url) as session:
            tokens.touch_session(session, found.id)
    return found


def check_origin(request: Request, settings: Settings) -> None:
    """403 for a state-changing request from another site."""
    if not same_origin(request.headers, settings.dashboard_origin_list):
        raise HTTPException(403, "this request did not come from a page of this node")


def caller(
    request: Request,
    settings: AppSettings,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The bearer token's caller, or the dashboard session's (a cookie's POST must come from
    a page of the node); 401 for neither."""
    url = settings.effective_database_url
    who = None
    if credentials:
        with read_session_scope(url) as session:
            found = tokens.lookup(session, credentials.credentials)
            if found is not None:
                who = Caller(found.name, found.role)
    elif COOKIE in request.cookies:
        if request.method not in ("GET", "HEAD"):
            check_origin(request, settings)  # a cookie is sent by a browser on any site
        live = session_caller(url, request.cookies[COOKIE], settings)
        if live is not None:
            who = Caller(live.name, live.role)
    if who is None:
        raise HTTPException(401, "a valid bearer token is needed", {"WWW-Authenticate": "Bearer"})
    return who


def operator(who: Annotated[Caller, Depends(caller)]) -> Caller:
    if not tokens.allows(who.role, TokenRole.OPERATOR):
        raise HTTPException(403, "this needs a token of role operator")
    return who


Reader = Annotated[Caller, Depends(caller)]
Operator = Annotated[Caller, Depends(operator)]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Times compare in UTC (SQLite keeps no zone): a naive time is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


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


def audit_filter(
    event: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    instance_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> queries.AuditFilter:
    return queries.AuditFilter(event, actor, _utc(since), _utc(until), instance_id)


Filter = Annotated[queries.InstanceFilter, Depends(instance_filter)]
AuditWhere = Annotated[queries.AuditFilter, Depends(audit_filter)]
Limit = Annotated[int, Query(ge=1, le=queries.MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=10**9)]
InstanceId = Annotated[int, PathParam(ge=1, le=2**62)]


def require_instance(session: Session, instance_id: int) -> None:
    """404 for an instance the node does not have."""
    if session.get(Instance, instance_id) is None:
        raise HTTPException(404, "no such instance")
