"""The ``rascore`` command line (DESIGN.md, Contracts): one module per command group.

``--json`` output goes to stdout; messages go to stderr; exit code 2 on bad input with a
one-line reason (:func:`worker.cli.common.fail`). The command names and options are a contract.

May import everything in ``worker``, ``dicom_io`` and ``scoring``; heavy imports stay inside the
commands so that ``rascore --help`` is quick. Nothing imports ``worker.cli`` but ``__main__``.
"""

from __future__ import annotations

import typer

from worker.cli import (
    conformance,
    db,
    lab,
    model,
    node,
    outbox,
    phantom,
    records,
    rescore,
    site,
    token,
    validate,
)

app = typer.Typer(
    name="rascore",
    help="Scores RA joint damage on hand radiographs. Trained on phantoms: not for diagnostic use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command()(phantom.phantom)
app.command()(phantom.crops)
app.command()(lab.score)
app.command()(lab.evaluate)
app.command()(lab.train)
app.command()(node.serve)
app.command()(node.worker)
app.command()(node.demo)
app.add_typer(db.db_app, name="db")
app.add_typer(outbox.outbox_app, name="outbox")
app.add_typer(token.token_app, name="token")
app.add_typer(site.site_app, name="site")
app.add_typer(model.model_app, name="model")
app.command()(rescore.rescore)
app.command()(records.scores)
app.command()(records.audit)
app.command()(validate.validate)
app.command()(conformance.conformance)

__all__ = ["app"]
