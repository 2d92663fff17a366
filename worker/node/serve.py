"""``rascore serve``: the whole node on one machine.

Start-up order matters: the database is migrated first, then the broker runs, then the workers,
then the unfinished work of a previous run is queued again, and only then does the SCP accept
images — so nothing is acknowledged that the node cannot yet file. Shut-down runs the other way:
the SCP stops accepting, workers finish the task in hand (Celery's warm shutdown), then the
broker stops.

The workers are separate ``celery worker`` processes the node supervises: one pool for the
``score`` queue (``RASCORE_WORKERS`` processes) and one thread pool for ``send``; a worker that
dies is started again.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicom_io.net import StorageSCP
from dicom_io.net.processes import ReceiverProcesses, default_processes
from worker.db import migrate
from worker.jobs.celery_app import SCORE_QUEUE, SEND_QUEUE, configure
from worker.model_ref import model_ref
from worker.models_home import active_model_dir
from worker.node.broker import EmbeddedRedis
from worker.node.receivers import (
    new_receiver,
    receiver_scp,
    storage_scp,
    tls_context,
)
from worker.node.receiving import Receiver
from worker.node.store import Store, sweep_orphan_images
from worker.node.sweeper import hold_limit_s, reconcile, sweep
from worker.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Node", "storage_scp", "tls_context"]  # the SCP as the settings describe it

SWEEP_INTERVAL_S = 2.0
#: how often, at most, the sweeper compares the unfinished jobs with what the broker holds
RECONCILE_EVERY_S = 15.0
SEND_THREADS = 4


def _sweep_store(store: Store, database_url: str) -> None:
    try:
        sweep_orphan_images(store, database_url)
    except Exception as exc:  # the database briefly away: the next start sweeps again
        log.warning("store sweep failed", extra={"error": str(exc)[:200]})


def worker_command(queues: str, concurrency: int, pool: str, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.jobs.worker_app",
        "worker",
        "--queues",
        queues,
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--hostname",
        f"{name}-{uuid.uuid4().hex[:6]}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


@dataclass
class _Child:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0


@dataclass
class Node:
    settings: Settings
    broker: EmbeddedRedis | None = None
    scp: StorageSCP | ReceiverProcesses | None = None
    children: list[_Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _sweeper: threading.Thread | None = None
    _api: Any = None  #: the uvicorn server of the HTTP API
    _receiver: Receiver | None = None

    @property
    def database_url(self) -> str:
        return self.settings.effective_database_url

    def start(self) -> None:
        settings = self.settings
        # a model whose card does not describe its artefacts is refused before anything runs
        # (raises ModelRefused with the reason in one line); the active installed version
        # unless RASCORE_MODEL_DIR names one (worker.models_home)
        model_ref(active_model_dir(settings))
        home = settings.home.resolve()
        for folder in (home, settings.spool_dir, settings.effective_store_dir, home / "logs"):
            folder.mkdir(parents=True, exist_ok=True)
        migrate.upgrade(self.database_url)
        broker_url = settings.broker_url
        if not broker_url:
            self.broker = EmbeddedRedis(settings.broker_dir).start()
            broker_url = self.broker.url
        configure(settings, broker_url)
        env = {
            **os.environ,
            "RASCORE_HOME": str(home),
            "RASCORE_BROKER_URL": broker_url,
            "RASCORE_DATABASE_URL": self.database_url,
            "RASCORE_STORE_DIR": str(settings.effective_store_dir),
        }
        self._start_workers(env, home / "logs")
        self._env = env
        swept = sweep(self.database_url, everything=True)
        log.info("reconciled", extra={"jobs": swept.jobs, "builds": swept.builds})
        model = model_ref(active_model_dir(settings))
        store = Store(settings.effective_store_dir)
        # a crash between filing an image and its commit leaves a file no row names
        threading.Thread(
            target=_sweep_store, args=(store, self.database_url), name="store-sweep", daemon=True
        ).start()
        processes = settings.scp_processes or default_processes()
        if processes == 1:  # receiving in this process, as the sweeper and the API
            self._receiver = new_receiver(settings, model)
            self.scp = storage_scp(settings, self._receiver)
        else:  # each receiver process makes its own engine and broker client
            factory = functools.partial(receiver_scp, settings, broker_url)
            self.scp = ReceiverProcesses(factory, processes)
        self.scp.start()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="sweeper", daemon=True)
        self._sweeper.start()
        if settings.api_port:
            self._start_api()
        log.info(
            "node started",
            extra={
                "ae_title": settings.ae_title,
                "port": self.scp.port,
                "model": model.version,
                "workers": settings.workers,
                "scp_processes": processes,
                "api_port": settings.api_port,
            },
        )

    def _start_workers(self, env: dict[str, str], logs: Path) -> None:
        """The ``score`` pool (``RASCORE_WORKERS`` processes) and the ``send`` thread pool, as
        supervised ``celery worker`` processes; none with ``RASCORE_WORKERS=0``."""
        workers = self.settings.workers
        if workers <= 0:
            return
        self.children = [
            _Child(
                "score",
                worker_command(SCORE_QUEUE, workers, "prefork", "score"),
                logs / "worker-score.log",
            ),
            _Child(
                "send",
                worker_command(SEND_QUEUE, SEND_THREADS, "threads", "send"),
                logs / "worker-send.log",
            ),
        ]
        for child in self.children:
            self._spawn(child, env)

    def _start_api(self) -> None:
        """The HTTP API and dashboard, in a thread of this process (uvicorn)."""
        import uvicorn

        from worker.api.app import create_app

        config = uvicorn.Config(
            create_app(self.settings),
            host=self.settings.api_host,
            port=self.settings.api_port,
            log_level="warning",
            access_log=False,
        )
        self._api = uvicorn.Server(config)
        thread = threading.Thread(target=self._api.run, name="api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not self._api.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self._api.started:
            raise RuntimeError(f"the HTTP API could not start on port {self.settings.api_port}")

    def _spawn(self, child: _Child, env: dict[str, str]) -> None:
        out = open(child.log_path, "ab")  # noqa: SIM115 - the child owns it from here
        child.process = subprocess.Popen(
            child.command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        out.close()

    def _sweep_loop(self) -> None:
        every = min(RECONCILE_EVERY_S, max(self.settings.reconcile_after_s / 3, SWEEP_INTERVAL_S))
        next_reconcile = time.monotonic() + every
        while not self._stop.wait(SWEEP_INTERVAL_S):
            try:
                sweep(self.database_url, settings=self.settings)
                if time.monotonic() >= next_reconcile:  # what the broker lost, published again
                    next_reconcile = time.monotonic() + every
                    reconcile(
                        self.database_url,
                        after_s=self.settings.reconcile_after_s,
                        hold_s=hold_limit_s(self.settings),
                    )
            except Exception as exc:  # database briefly away: try again next round
                log.warning("sweep failed", extra={"error": str(exc)[:200]})
            for child in self.children:
                if child.process is not None and child.process.poll() is not None:
                    child.restarts += 1
                    log.warning(
                        "worker exited; starting it again",
                        extra={"worker": child.name, "code": child.process.returncode},
                    )
                    self._spawn(child, self._env)

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        if self._api is not None:
            self._api.should_exit = True
        if self.scp is not None:
            self.scp.stop()
        if self._sweeper is not None:
            self._sweeper.join(timeout=10)
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)  # warm shutdown: finish the task
        deadline = time.monotonic() + timeout
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if self.broker is not None:
            self.broker.stop()
        log.info("node stopped")

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        try:
            while not stop.wait(1.0):
                pass
        finally:
            self.stop()
