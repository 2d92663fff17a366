"""``rascore outbox …``: result objects waiting for, or given up on, delivery."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from worker.cli.common import err
from worker.settings import Settings

outbox_app = typer.Typer(
    help="Result objects waiting for, or given up on, delivery.", no_args_is_help=True
)


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
    from worker.db.models import DeliveryStatus
    from worker.db.outbox import list_deliveries

    with session_scope(Settings().effective_database_url) as session:
        rows = list_deliveries(session, DeliveryStatus(status) if status else None, limit)
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
    from worker.db.models import AuditEvent, AuditEventType, Delivery, DeliveryStatus
    from worker.db.outbox import make_due

    if not ids and not failed:
        raise typer.BadParameter("name delivery ids or --failed")
    with session_scope(Settings().effective_database_url) as session:
        chosen = make_due(
            session,
            Delivery.id.in_(ids) if ids else Delivery.status == DeliveryStatus.FAILED,
        )
        for delivery_id in chosen:
            session.add(
                AuditEvent(
                    event=AuditEventType.RESEND, actor="cli", detail={"delivery_id": delivery_id}
                )
            )
    err.print(f"{len(chosen)} deliveries queued again; the node sends them within seconds")
