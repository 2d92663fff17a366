"""Commands of the running node: ``serve``, ``worker``, ``db …`` and ``outbox …``."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from worker.settings import Settings

err = Console(stderr=True)
db_app = typer.Typer(help="The node's database (Alembic migrations).", no_args_is_help=True)
outbox_app = typer.Typer(
    help="Result objects waiting for, or given up on, delivery.", no_args_is_help=True
)


def _check_model(settings: Settings, command: str) -> None:
    """Refuse to start on a model whose card does not describe its artefacts (one line, 2)."""
    from worker.model_ref import ModelRefused, model_ref

    try:
        model_ref(settings.model_dir)
    except ModelRefused as exc:
        print(f"rascore {command}: refusing to start: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def serve() -> None:
    """Run the whole node on this machine: SCP, workers, broker (embedded unless set), API."""
    settings = Settings()
    _check_model(settings, "serve")
    # Before anything imports prometheus_client: the node, its workers and the API add up
    # their metrics from per-process files in this folder (emptied: counts start at zero).
    metrics_dir = (settings.home / "metrics").resolve()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    from worker import logs
    from worker.node import Node

    logs.setup()
    Node(settings).serve_forever()


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
    _check_model(settings, "worker")
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
    from worker.api.operations import make_due
    from worker.db.engine import session_scope
    from worker.db.models import AuditEvent, AuditEventType, Delivery, DeliveryStatus

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


token_app = typer.Typer(help="Bearer tokens of the HTTP API.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    name: str,
    role: Annotated[str, typer.Option(help="read or operator.")] = "read",
) -> None:
    """Make a token; it is printed once (stdout) and only its SHA-256 is kept."""
    from worker.api.auth import create_token
    from worker.db import migrate
    from worker.db.engine import session_scope
    from worker.db.models import TokenRole

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
    from worker.api.auth import revoke
    from worker.db.engine import session_scope

    with session_scope(Settings().effective_database_url) as session:
        if not revoke(session, name):
            raise typer.BadParameter(f"no live token named {name!r}")
    err.print(f"token {name!r} revoked")


def scores(
    patient_id: Annotated[str, typer.Option(help="The patient whose scores to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    limit: int = 200,
) -> None:
    """Every stored score of one patient's images (the same query as the API's)."""
    import getpass

    from worker.api import queries
    from worker.db.engine import session_scope

    with session_scope(Settings().effective_database_url) as session:
        queries.record_query(
            session, f"cli:{getpass.getuser()}", "patient scores", {"patient_id": patient_id}
        )
        rows = queries.scores_for_patient(session, patient_id, limit)
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("scored", "instance", "side", "JSN", "erosion", "joints scored", "model")
    for r in rows:
        t = r["totals"]
        table.add_row(
            r["scored_at"][:19], str(r["instance_id"]), r["laterality"],
            str(t["jsn"]), str(t["erosion"]),
            f"{t.get('joints_scored', len(r['joints']))} of {t.get('joints_expected', '?')}",
            r["model"]["version"],
        )  # fmt: skip
    Console().print(table)


def audit(
    event: Annotated[str | None, typer.Option(help="e.g. received, scored, sent, queried.")] = None,
    actor: Annotated[str | None, typer.Option(help="AE title, worker or token name.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date or time.")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date or time.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    limit: int = 100,
) -> None:
    """The audit trail, newest first (the same query as the API's)."""
    import datetime as dt

    from worker.api import queries
    from worker.db.engine import session_scope

    def when(text: str | None) -> dt.datetime | None:
        if text is None:
            return None
        value = dt.datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    where = queries.AuditFilter(event, actor, when(since), when(until))
    with session_scope(Settings().effective_database_url) as session:
        page = queries.list_audit(session, where, limit)
    if as_json:
        print(json.dumps(page, indent=1))
        return
    table = Table("id", "at", "event", "actor", "instance", "detail")
    for e in page["items"]:
        table.add_row(
            str(e["id"]), e["at"][:19], e["event"], e["actor"], str(e["instance_id"] or ""),
            json.dumps(e["detail"])[:80],
        )  # fmt: skip
    Console().print(table)
