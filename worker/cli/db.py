"""``rascore db …``: the node's database migrations (Alembic)."""

from __future__ import annotations

from typing import Annotated

import typer

from worker.cli.common import err
from worker.settings import Settings

db_app = typer.Typer(help="The node's database (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the database up (``rascore serve`` does this on start)."""
    from worker.db import migrate

    migrate.upgrade(Settings().effective_database_url, revision)
    err.print(f"database at {migrate.current(Settings().effective_database_url)}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (``base`` empties it)."""
    from worker.db import migrate

    migrate.downgrade(Settings().effective_database_url, revision)
    err.print(f"database at {migrate.current(Settings().effective_database_url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's revision."""
    from worker.db import migrate

    print(migrate.current(Settings().effective_database_url) or "empty")
