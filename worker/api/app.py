"""The HTTP API and dashboard of the node (FastAPI), served by ``rascore serve``.

Reading needs a token of role ``read`` or ``operator``; resending and rescoring need
``operator``. A token comes as ``Authorization: Bearer …``; the dashboard's pages call the API
with the cookie of a dashboard session instead (a POST with that cookie must come from a page of
the node). Every request that returns patient data is written to the audit trail with the
token's name. ``/healthz`` and ``/metrics`` carry no patient data and need no token.

GET routes read in read-only sessions (on SQLite: no write lock, so a flood of them never makes
the SCP's C-STOREs wait); their audit row goes in its own short write transaction after the
read, and nothing is rendered or encoded inside a transaction. Exports stream their CSV page by
page, each page a keyset query in its own short read.
"""

from fastapi import FastAPI

from worker.api import dashboard
from worker.api.routes import export, health, instances, patients, records
from worker.db.engine import session_factory
from worker.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """The app of ``settings``: its routers find the settings and the session factory in
    ``app.state`` (:mod:`worker.api.deps`)."""
    app = FastAPI(
        title="rascore",
        version="1",
        description="Audit queries and operations of a rascore node. Scores come from a model "
        "trained on synthetic phantoms and healthy hands, not validated on RA radiographs: "
        "NOT FOR DIAGNOSTIC USE.",
    )
    app.state.settings = settings
    app.state.sessions = session_factory(settings.effective_database_url)
    for router in (health, instances, records, patients, export, dashboard):
        app.include_router(router.router)
    return app
