"""The audit HTTP API and its dashboard: :func:`~worker.api.app.create_app` joins one router
per resource, bearer-token and session auth (:mod:`~worker.api.auth`), the dashboard's pages,
and the Prometheus export.

May import ``worker.settings``, ``worker.db`` (queries and operations, the domain services),
``worker.metrics``, ``worker.model_ref`` and ``worker.jobs.queueing`` (to publish a rescore);
never the node's internals (``worker.node``), ``worker.cli``, ``dicom_io`` or ``scoring``.
"""
