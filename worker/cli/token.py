"""``rascore token …``: the HTTP API's bearer tokens."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from worker.cli.common import err
from worker.settings import Settings

token_app = typer.Typer(help="Bearer tokens of the HTTP API.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: str,
    role: Annotated[str, typer.Option(help="read or operator.")] = "read",
) -> None:
    """Make a token; it is printed once (stdout) and only its SHA-256 is kept."""
    from worker.db import migrate
    from worker.db.engine import session_scope
    from worker.db.models import TokenRole
    from worker.db.tokens import create_token

    url = Settings().effective_database_url
    migrate.upgrade(url)
    try:
        chosen = TokenRole(role)
    except ValueError:
        raise typer.BadParameter("role must be read or operator") from None
    with session_scope(url) as session:
        token = create_token(session, name, chosen)
    print(token)
    err.print(f"token {name!r} ({chosen.value}) made; keep it: it cannot be shown again")


@token_app.command("list")
def token_list() -> None:
    """Names, roles and dates of the tokens (never the tokens)."""
    from worker.db.engine import session_scope
    from worker.db.models import ApiToken

    table = Table("name", "role", "created", "revoked")
    with session_scope(Settings().effective_database_url) as session:
        for t in session.scalars(select(ApiToken).order_by(ApiToken.name)):
            table.add_row(
                t.name, t.role.value, t.created_at.isoformat()[:19],
                t.revoked_at.isoformat()[:19] if t.revoked_at else "",
            )  # fmt: skip
    Console().print(table)


@token_app.command("revoke")
def token_revoke(name: str) -> None:
    """Revoke a token by name."""
    from worker.db.engine import session_scope
    from worker.db.tokens import revoke

    with session_scope(Settings().effective_database_url) as session:
        if not revoke(session, name):
            raise typer.BadParameter(f"no live token named {name!r}")
    err.print(f"token {name!r} revoked")
