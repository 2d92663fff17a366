"""The running node: ``serve`` (everything on one machine), ``worker`` (an extra Celery worker)
and ``demo`` (the round trip on embedded defaults)."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer

from worker.settings import Settings


def _check_model(settings: Settings, command: str) -> None:
    """Refuse to start on a model whose card does not describe its artefacts (one line, 2)."""
    from worker.model_ref import ModelRefused, model_ref
    from worker.models_home import active_model_dir

    try:
        model_ref(active_model_dir(settings))
    except ModelRefused as exc:
        print(f"rascore {command}: refusing to start: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def serve() -> None:
    """Run the whole node on this machine: SCP, workers, broker (embedded unless set), API."""
    settings = Settings()
    _check_model(settings, "serve")
    # Before anything imports prometheus_client: the node, its workers and the API add up
    # their metrics from per-process files in this folder (emptied: counts start at zero).
    metrics_dir = (settings.home / "metrics").resolve()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    from worker import logs
    from worker.node.serve import Node

    logs.setup()
    Node(settings).serve_forever()


def worker(
    queues: Annotated[str, typer.Option(help="Queues to consume, comma-separated.")] = "score,send",
    concurrency: Annotated[
        int | None, typer.Option(help="Processes (default: RASCORE_WORKERS).")
    ] = None,
) -> None:
    """Run an extra Celery worker against RASCORE_BROKER_URL and RASCORE_DATABASE_URL."""
    from worker import logs
    from worker.jobs.celery_app import configure

    settings = Settings()
    if not settings.broker_url:
        raise typer.BadParameter("RASCORE_BROKER_URL must name the node's broker")
    _check_model(settings, "worker")
    logs.setup()
    configure(settings).worker_main(
        [
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency or max(settings.workers, 1)),
            "--loglevel",
            "INFO",
            "--hostname",
            f"worker-{uuid.uuid4().hex[:6]}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def demo(
    phantoms: Annotated[Path, typer.Option(help="Folder of phantom radiographs to send.")],
    out: Annotated[Path, typer.Option(help="Where the node and the local PACS keep things.")],
    count: Annotated[int, typer.Option(help="How many of the phantoms to send.")] = 2,
) -> None:
    """The round trip on embedded defaults: node up, images in, SR + SC + GSPS back, node down."""
    from worker.lab.demo import run_demo

    files = sorted(phantoms.glob("*.dcm"))[:count]
    if not files:
        raise typer.BadParameter(f"no .dcm files in {phantoms}")
    if run_demo(files, out) != len(files):
        raise typer.Exit(1)
