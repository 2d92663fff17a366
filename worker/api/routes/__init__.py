"""One router per resource of the HTTP API; :func:`worker.api.app.create_app` joins them.
Each reads through :mod:`worker.db.queries`, acts through :mod:`worker.db.operations`, and takes
who is asking and its sessions from :mod:`worker.api.deps`."""
