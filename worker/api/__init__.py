"""The audit HTTP API and its dashboard: :func:`~worker.api.app.create_app` joins one router
per resource (:mod:`worker.api.routes`) and the dashboard's pages; :mod:`~worker.api.deps` says
who is asking (bearer token or dashboard session, :mod:`~worker.api.auth`) and hands out
sessions; :mod:`~worker.api.metrics_export` is the Prometheus export.

May import ``worker.settings``, ``worker.db`` (queries and operations, the domain services),
``worker.metrics``, ``worker.model_ref``, ``worker.png`` and ``worker.jobs.queueing`` (to
publish a rescore and to ask the broker how it is); never the node's internals
(``worker.node``), the Celery app itself, ``worker.cli``, ``dicom_io`` or ``scoring``.
"""
