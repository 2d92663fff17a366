"""The audit HTTP API and its dashboard: :func:`~worker.api.app.create_app` joins one router
per resource (:mod:`worker.api.routes`) and the dashboard's pages. :mod:`~worker.api.deps`
says who is asking (a bearer token or a dashboard session, checked against
:mod:`worker.db.tokens`; a cookie's POST must come from a page of the node,
:mod:`~worker.api.origin`) and hands out sessions; :mod:`~worker.api.metrics_export` is the
Prometheus export.

May import ``worker.settings``, ``worker.db`` (queries, operations and tokens: the domain
services), ``worker.metrics``, ``worker.model_ref``, ``worker.png`` and ``worker.jobs.queueing``
(to publish a rescore and to ask the broker how it is); never the node's internals
(``worker.node``), the Celery app itself, ``worker.cli``, ``dicom_io`` or ``scoring``.
"""
