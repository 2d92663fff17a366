"""``rascore model …``: the model bundles installed in RASCORE_HOME, and which one scores.

``install`` copies a bundle made by ``rascore train`` into ``HOME/models/<version>``;
``activate`` makes an installed (or the shipped) version the one new images are scored with —
a running node queues every image that arrives after it for it, its workers load the version
each job names — and writes a ``model_activated`` audit event when the node's database is there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from worker.cli.common import err, fail
from worker.settings import Settings

model_app = typer.Typer(help="Model versions installed in RASCORE_HOME.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]


@model_app.command("list")
def model_list(as_json: AsJson = False) -> None:
    """Every model: the shipped one and those installed, the active one marked."""
    from worker.models_home import list_models

    settings = Settings()
    rows = [m.as_dict() for m in list_models(settings.home)]
    if settings.model_dir is not None:
        err.print(f"RASCORE_MODEL_DIR={settings.model_dir} overrides the active version")
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    table = Table("", "version", "name", "detector", "trained on", "installed")
    for m in rows:
        table.add_row(
            "*" if m["active"] else "", m["version"], m["name"], m["detector"],
            (m["trained_on"] or "")[:12], "built in" if m["builtin"] else m["installed_at"] or "",
        )  # fmt: skip
    Console().print(table)


@model_app.command("show")
def model_show(version: str, as_json: AsJson = False) -> None:
    """One model's card (checked: a tampered bundle exits 2 with the reason)."""
    from worker.models_home import ModelRefused, list_models, model_dir_for, read_card

    settings = Settings()
    try:
        directory = model_dir_for(settings.home, version)
        from scoring.model import identify

        identify(directory)
    except ModelRefused as exc:
        raise fail(str(exc)) from None
    entry = next(m for m in list_models(settings.home) if m.directory == str(directory))
    card = read_card(directory)
    card.pop("training", None)  # the epoch-by-epoch curves: in the model folder
    shown: dict[str, Any] = {**entry.as_dict(), "card": card}
    if as_json:
        print(json.dumps(shown, indent=1))
        return
    for key in ("version", "name", "detector", "directory", "trained_on", "installed_at"):
        print(f"{key:13} {shown[key] if shown[key] is not None else ''}")
    print(f"{'active':13} {'yes' if shown['active'] else 'no'}")
    print(f"{'created':13} {card.get('created', '')}")
    print(f"{'intended use':13} {card.get('intended_use', '')}")


@model_app.command("install")
def model_install(
    directory: Annotated[Path, typer.Argument(help="A bundle made by rascore train.")],
    as_json: AsJson = False,
) -> None:
    """Copy a checked bundle into RASCORE_HOME/models/<version> (not activated)."""
    from worker.models_home import ModelRefused, install

    if not directory.is_dir():
        raise fail(f"{directory} is not a folder")
    try:
        identity, new = install(Settings().home, directory)
    except ModelRefused as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps({"version": identity.version, "installed": new}))
    err.print(
        f"model {identity.version} {'installed' if new else 'was installed already'}; "
        f"`rascore model activate {identity.version}` scores new images with it"
    )


@model_app.command("activate")
def model_activate(
    version: Annotated[
        str, typer.Argument(help="An installed version, or a bundle folder (installed first).")
    ],
    as_json: AsJson = False,
) -> None:
    """Score new images with this version (a running node queues the next image for it)."""
    from worker.models_home import ModelRefused, activate, active_model_version, install

    settings = Settings()
    if Path(version).is_dir():  # a bundle just made by rascore train: install it first
        try:
            version = install(settings.home, Path(version))[0].version
        except ModelRefused as exc:
            raise fail(str(exc)) from None
    try:
        previous = active_model_version(settings)
    except ModelRefused:
        previous = None  # the active one is broken or gone: activating another mends that
    try:
        identity = activate(settings.home, version)
    except ModelRefused as exc:
        raise fail(str(exc)) from None
    detail = {"version": identity.version, "name": identity.name, "previous": previous}
    audited = _audit_activation(settings, detail)
    if settings.model_dir is not None:
        err.print(f"note: RASCORE_MODEL_DIR={settings.model_dir} still overrides it here")
    if as_json:
        print(json.dumps({**detail, "audited": audited}))
    err.print(f"model {identity.version} is active" + ("" if audited else " (not audited)"))


def _audit_activation(settings: Settings, detail: dict[str, Any]) -> bool:
    """The activation's audit row, when the node's database exists and is reachable (a node
    set up later has no row of it; stderr says so)."""
    import getpass

    from sqlalchemy.exc import SQLAlchemyError

    from worker.db import migrate
    from worker.db.engine import session_scope
    from worker.db.models import AuditEvent
    from worker.models_home import MODEL_ACTIVATED

    url = settings.effective_database_url
    if not settings.database_url and not (settings.home / "rascore.db").is_file():
        print("rascore: no database yet: the activation is not audited", file=sys.stderr)
        return False
    try:
        if migrate.current(url) is None:
            raise SQLAlchemyError("not set up (rascore db upgrade)")
        with session_scope(url) as session:
            actor = f"cli:{getpass.getuser()}"
            session.add(AuditEvent(event=MODEL_ACTIVATED, actor=actor, detail=detail))
    except SQLAlchemyError as exc:
        reason = str(exc).splitlines()[0][:200]
        print(f"rascore: database unreachable, activation not audited: {reason}", file=sys.stderr)
        return False
    return True
