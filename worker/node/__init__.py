"""The node: what runs on the machine that receives images (``rascore serve``).

The SCP's handler files each accepted image (:mod:`~worker.node.receiving`, routed by
:mod:`~worker.node.routing`, kept by :mod:`~worker.node.store`), the sweeper finds work the
broker lost (:mod:`~worker.node.sweeper`), an embedded Redis stands in for a broker when none is
set (:mod:`~worker.node.broker`), and :mod:`~worker.node.serve` starts and stops it all in order.

May import ``dicom_io``, ``worker.settings``, ``worker.db`` and ``worker.jobs`` (to publish);
never ``scoring`` (the node scores nothing itself) and never ``worker.cli``.
"""
