"""rascore's service: the node that receives, queues, scores, stores and sends, and the
command line that wires it all (DESIGN.md, Layout; ARCHITECTURE.md draws the flow).

Subpackages: ``node`` (receiving and the process that runs it all), ``jobs`` (scoring, building,
sending; the Celery app), ``db`` (models, engine, migrations, queries, operations), ``api`` (the
audit HTTP API and dashboard), ``lab`` (training, evaluation, reports, phantom export, demo) and
``cli`` (the ``rascore`` command). Top-level modules are services every part may use: settings,
logs, metrics, the model reference, an overlay as PNG, and :mod:`~worker.scoring_io` (a
DICOM file scored).

``worker`` may import ``dicom_io`` and ``scoring``; they never import ``worker``.
"""
