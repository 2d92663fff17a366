"""``celery -A worker.jobs.worker_app``: the app of a worker process the node starts,
configured from the environment's settings (``RASCORE_*``) when Celery loads this module."""

from worker.jobs.celery_app import configure
from worker.settings import Settings

app = configure(Settings())
