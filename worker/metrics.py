"""Prometheus metrics of the node and its workers.

The node, its Celery pool processes and the API are separate processes, so the metrics use
prometheus-client's multiprocess mode: ``rascore serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at
``HOME/metrics`` (emptied at start) before anything imports prometheus_client, every process
writes its own files there, and ``/metrics`` adds them up. Workers on other machines keep their
own counts (scrape them there, or read the database, which holds everything).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RECEIVED = Counter(
    "rascore_instances_received", "C-STOREs acknowledged, by outcome", ["outcome"]
)  #: outcome: new | duplicate
SKIPPED = Counter("rascore_instances_skipped", "Instances accepted but not scored (routing)")
SCORED = Counter("rascore_instances_scored", "Jobs that ended scored")
FAILED = Counter("rascore_instances_failed", "Jobs that ended failed, for good")
SCORING_FAILED = Counter(
    "rascore_scoring_failed", "Jobs that ended failed, for good, by reason code", ["reason"]
)  #: reason: the code of the job's "<code>: <message>" reason, e.g. too-large, sop-class
BUILDS_FAILED = Counter(
    "rascore_builds_failed", "Result builds that failed (scores kept), by reason code", ["reason"]
)
SENT = Counter("rascore_results_sent", "Result objects delivered, by kind", ["kind"])
SEND_FAILURES = Counter("rascore_send_failures", "Failed delivery attempts")
STAGE_SECONDS = Histogram(
    "rascore_stage_seconds",
    "Time per processing stage (read, detect, identify, score, build, send)",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
RECEIVED_TO_SCORED = Histogram(
    "rascore_received_to_scored_seconds",
    "From the C-STORE to the scores in the database",
    buckets=STAGE_BUCKETS,
)
