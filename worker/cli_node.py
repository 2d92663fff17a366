"""Commands of the running node: ``serve``, ``worker``, ``db …`` and ``outbox …``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, update

from worker.settings import Settings

err = Console(stderr=True)
db_app = typer.Typer(help="The node's database (Alembic migrations).", no_args_is_help=True)
outbox_app = typer.Typer(
    help="Result objects waiting for, or given up on, delivery.", no_args_is_help=True
)


def serve() -> None:
    """Run the whole node on this machine: SCP, workers, broker (embedded unless set)."""
    from worker import logs
    from worker.node import Node

    logs.setup()
    Node(Settings()).serve_forever()


def worker(
    queues: Annotated[str, typer.Option(help="Queues to consume, comma-separated.")] = "score,send",
    concurrency: Annotated[
        int | None, typer.Option(help="Processes (default: RASCORE_WORKERS).")
    ] = None,
) -> None:
    """Run an extra Celery worker against RASCORE_BROKER_URL and RASCORE_DATABASE_URL."""
    from worker import logs
    from worker.celery_app import app, configure

    settings = Settings()
    if not settings.broker_url:
        raise typer.BadParameter("RASCORE_BROKER_URL must name the node's broker")
    logs.setup()
    configure(settings)
    app.worker_main(
        [
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency or max(settings.workers, 1)),
            "--loglevel",
            "INFO",
            "--hostname",
            f"worker-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


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


@outbox_app.command("list")
def outbox_list(
    status: Annotated[
        str | None, typer.Option(help="pending, sent or failed (default: all but sent).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    limit: int = 200,
) -> None:
    """Deliveries of result objects with their state, attempts and last error."""
    from worker.db.engine import session_scope
    from worker.db.models import Delivery, DeliveryStatus, ResultObject

    with session_scope(Settings().effective_database_url) as session:
        query = select(Delivery, ResultObject).join(ResultObject)
        if status:
            query = query.where(Delivery.status == DeliveryStatus(status))
        else:
            query = query.where(Delivery.status != DeliveryStatus.SENT)
        rows: list[dict[str, Any]] = [
            {
                "id": d.id,
                "kind": r.kind,
                "sop_instance_uid": r.sop_instance_uid,
                "destination": d.destination,
                "status": d.status.value,
                "attempts": d.attempts,
                "next_attempt_at": d.next_attempt_at.isoformat(),
                "last_status": d.last_status,
                "last_error": d.last_error,
            }
            for d, r in session.execute(query.order_by(Delivery.id).limit(limit))
        ]
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("id", "kind", "destination", "status", "attempts", "next attempt", "last error")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["kind"],
            row["destination"],
            row["status"],
            str(row["attempts"]),
            row["next_attempt_at"][:19],
            row["last_error"][:60],
        )
    Console().print(table)


@outbox_app.command("resend")
def outbox_resend(
    ids: Annotated[list[int] | None, typer.Argument(help="Delivery ids.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed delivery.")] = False,
) -> None:
    """Send deliveries again now (failed or sent ones too, when named)."""
    from worker.db.engine import session_scope
    from worker.db.models import AuditEvent, AuditEventType, Delivery, DeliveryStatus, utcnow

    if not ids and not failed:
        raise typer.BadParameter("name delivery ids or --failed")
    with session_scope(Settings().effective_database_url) as session:
        query = update(Delivery)
        if ids:
            query = query.where(Delivery.id.in_(ids))
        else:
            query = query.where(Delivery.status == DeliveryStatus.FAILED)
        chosen = (
            session.execute(
                query.values(
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=utcnow(),
                    claimed_at=None,
                    enqueued_at=None,
                ).returning(Delivery.id)
            )
            .scalars()
            .all()
        )
        for delivery_id in chosen:
            session.add(
                AuditEvent(
                    event=AuditEventType.RESEND, actor="cli", detail={"delivery_id": delivery_id}
                )
            )
    err.print(f"{len(chosen)} deliveries queued again; the node sends them within seconds")


def demo(
    phantoms: Annotated[Path, typer.Option(help="Folder of phantom radiographs to send.")],
    out: Annotated[Path, typer.Option(help="Where the node and the local PACS keep things.")],
    count: Annotated[int, typer.Option(help="How many of the phantoms to send.")] = 2,
) -> None:
    """The round trip on embedded defaults: node up, images in, SR + SC + GSPS back, node down."""
    from worker.demo import run_demo

    files = sorted(phantoms.glob("*.dcm"))[:count]
    if not files:
        raise typer.BadParameter(f"no .dcm files in {phantoms}")
    if run_demo(files, out) != len(files):
        raise typer.Exit(1)
