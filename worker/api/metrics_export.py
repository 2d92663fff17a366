"""``/metrics``: the counters and histograms of every process of the node, and queue depths."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

import worker.metrics  # noqa: F401 - registers the node's metrics in this process
from worker.jobs.celery_app import SCORE_QUEUE, SEND_QUEUE
from worker.jobs.celery_app import app as celery


class QueueDepth(Collector):
    """Messages waiting on the broker, per queue, read at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "rascore_queue_depth", "Messages waiting on the broker", labels=["queue"]
        )
        try:
            with celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=2)
                channel = connection.default_channel
                redis = getattr(channel, "client", None)  # Redis: a queue is a list
                for queue in (SCORE_QUEUE, SEND_QUEUE):
                    if redis is not None:
                        count = int(redis.llen(queue))
                    else:
                        _, count, _ = channel.queue_declare(queue=queue, passive=True)
                    gauge.add_metric([queue], count)
        except Exception:  # broker away: no depth to tell (healthz says why)
            pass
        yield gauge


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # rascore serve: add up every process
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    queues = CollectorRegistry()
    queues.register(QueueDepth())
    return body + generate_latest(queues), CONTENT_TYPE_LATEST
