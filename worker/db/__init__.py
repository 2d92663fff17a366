"""The database, the system of record: typed models (:mod:`~worker.db.models`), engine and
sessions (:mod:`~worker.db.engine`), Alembic migrations (:mod:`~worker.db.migrate`), and the
domain services the API and the command line share: the audited read queries
(:mod:`~worker.db.queries`), what an operator may do (:mod:`~worker.db.operations`), the outbox's
rows (:mod:`~worker.db.outbox`), and the API's tokens and dashboard sessions
(:mod:`~worker.db.tokens`).

May import SQLAlchemy, ``worker.settings`` and ``worker.model_ref``; never ``dicom_io``,
``scoring``, the API, the node or the command line.
"""
