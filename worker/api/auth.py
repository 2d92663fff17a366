"""Bearer tokens with two roles. A token is 256 random bits shown once at creation; the
database keeps its SHA-256 (a slow hash buys nothing for random secrets this long)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.db.models import ApiToken, TokenRole, utcnow

PREFIX = "rsc_"


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
    found = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if found is None or found.revoked_at is not None:
        return False
    found.revoked_at = utcnow()
    return True


def allows(role: TokenRole, needed: TokenRole) -> bool:
    return role == TokenRole.OPERATOR or needed == TokenRole.READ
