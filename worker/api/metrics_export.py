"""``/metrics``: the counters and histograms of every process of the node, and queue depths."""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

import worker.metrics  # noqa: F401 - registers the node's metrics in this process
from worker.jobs.queueing import queue_depths


class QueueDepth(Collector):
    """Messages waiting on the broker, per queue, read at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "rascore_queue_depth", "Messages waiting on the broker", labels=["queue"]
        )
        # a broker away gives no depth to tell (healthz says why)
        for queue, count in queue_depths().items():
            gauge.add_metric([queue], count)
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
