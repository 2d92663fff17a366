"""The work the node queues: scoring an image, building its result objects, sending them.

The functions are plain and idempotent, of the settings and a row id (:mod:`~worker.jobs.score`,
:mod:`~worker.jobs.build`, :mod:`~worker.jobs.outbox`); :mod:`~worker.jobs.tasks` wraps them as
Celery tasks of the app in :mod:`~worker.jobs.celery_app`, and :mod:`~worker.jobs.queueing`
publishes them. :mod:`~worker.jobs.mapping` turns scores into rows and rows into the
:class:`dicom_io.results.ScoringResult` the builders take.

May import ``dicom_io``, ``scoring``, ``worker.scoring_io``, ``worker.settings``, ``worker.db``,
``worker.metrics`` and ``worker.node.store``; never ``worker.api``, ``worker.lab`` or
``worker.cli``.
"""
