"""``rascore scores`` and ``rascore audit``: the same audited queries as the API's."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from worker.settings import Settings


def scores(
    patient_id: Annotated[str, typer.Option(help="The patient whose scores to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    limit: int = 200,
) -> None:
    """Every stored score of one patient's images (the same query as the API's)."""
    import getpass

    from worker.db import queries
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

    from worker.db import queries
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
