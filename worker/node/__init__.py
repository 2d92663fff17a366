"""The node: what runs on the machine that receives images (``rascore serve``).

The SCP's handler files each accepted image (:mod:`~worker.node.receiving`, routed by
:mod:`~worker.node.routing`, kept by :mod:`~worker.node.store`), the sweeper finds work the
broker lost (:mod:`~worker.node.sweeper`), an embedded Redis stands in for a broker when none is
set (:mod:`~worker.node.broker`), and :mod:`~worker.node.serve` starts and stops it all in order.

May import ``dicom_io``, ``worker.settings``, ``worker.db``, ``worker.jobs`` (to publish and to
configure Celery) and ``worker.api`` (it serves the API); the model only through
``worker.model_ref`` (its identity, no torch: the node scores nothing itself, its workers do);
never ``worker.lab`` or ``worker.cli``.
"""
