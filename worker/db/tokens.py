"""Bearer tokens with two roles, and the dashboard's sessions opened with them: the records the
API checks a caller against and ``rascore token`` manages.

A token is 256 random bits shown once at creation; the database keeps its SHA-256 (a slow hash
buys nothing for random secrets this long). A dashboard login opens a server-side session in the
same way: the browser's cookie holds a random secret, never the token, and the row (keyed by the
secret's SHA-256) ends at logout, when idle, at an absolute limit, or when its token is revoked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from worker.db.models import ApiToken, DashboardSession, TokenRole, utcnow

PREFIX = "rsc_"
SESSION_PREFIX = "rss_"
#: a session's last-seen time is written at most this often (a read stays read-only)
TOUCH_EVERY = dt.timedelta(seconds=60)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: TokenRole) -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, role=role, token_sha256=digest(token)))
    return token


def lookup(session: Session, token: str) -> ApiToken | None:
    """The live token with this value, or None (unknown or revoked)."""
    if not token.startswith(PREFIX):
        return None
    found = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest(token)))
    if found is None or found.revoked_at is not None:
        return None
    return found


def revoke(session: Session, name: str) -> bool:
    """Revoke the token and every dashboard session opened with it."""
    found = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if found is None or found.revoked_at is not None:
        return False
    found.revoked_at = now = utcnow()
    session.execute(
        update(DashboardSession)
        .where(DashboardSession.token_id == found.id, DashboardSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return True


# -- dashboard sessions --------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionCaller:
    """Whom a live dashboard session speaks for; ``touch``: its last-seen time wants writing."""

    id: str
    name: str
    role: TokenRole
    touch: bool


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite gives times back without their zone; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def open_session(session: Session, token: ApiToken, lifetime: dt.timedelta) -> str:
    """A new dashboard session for ``token``; returns the secret for the cookie. Sessions
    past their absolute limit are deleted on the way (they can never be used again)."""
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session.execute(delete(DashboardSession).where(DashboardSession.expires_at < now))
    session.add(
        DashboardSession(
            id=digest(secret),
            token_id=token.id,
            token_name=token.name,
            role=token.role,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    return secret


def lookup_session(session: Session, secret: str, idle: dt.timedelta) -> SessionCaller | None:
    """The live session with this secret, or None: unknown, logged out, idle too long,
    expired, or its token revoked. Reads only."""
    if not secret.startswith(SESSION_PREFIX):
        return None
    row = session.get(DashboardSession, digest(secret))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    last_seen = _aware(row.last_seen_at)
    if now >= _aware(row.expires_at) or now - last_seen >= idle:
        return None
    token = session.get(ApiToken, row.token_id)
    if token is None or token.revoked_at is not None:
        return None
    return SessionCaller(row.id, row.token_name, row.role, now - last_seen >= TOUCH_EVERY)


def touch_session(session: Session, session_id: str) -> None:
    session.execute(
        update(DashboardSession)
        .where(DashboardSession.id == session_id, DashboardSession.revoked_at.is_(None))
        .values(last_seen_at=utcnow())
    )


def close_session(session: Session, secret: str) -> bool:
    """Logout: the session ends on the server, whatever copies of the cookie exist."""
    done = session.execute(
        update(DashboardSession)
        .where(DashboardSession.id == digest(secret), DashboardSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(getattr(done, "rowcount", 0))


def allows(role: TokenRole, needed: TokenRole) -> bool:
    return role == TokenRole.OPERATOR or needed == TokenRole.READ
