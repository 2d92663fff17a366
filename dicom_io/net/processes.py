"""Receiving in several processes: one listening socket, N receiver processes accepting on it.

One Python process receives ten associations at about 0.6× the rate of dcmtk's ``storescp
--fork`` on two cores, fsync or not: pynetdicom's per-PDU work holds the GIL. Receiver
processes, each a whole :class:`~dicom_io.net.scp.StorageSCP` with its own threads, let ingest
use every core.

- **One socket, bound once by the parent and inherited** (not ``SO_REUSEPORT``): with
  ``SO_REUSEPORT`` each process has its own accept queue, chosen by a hash of the peer's
  address, so a busy process is handed new connections while an idle one waits, and those
  queued to a process that dies are reset. On one shared socket whichever process is free
  accepts, and nothing queued is lost with a process. The socket is non-blocking, so a process
  woken for a connection that another took goes back to waiting.
- **Spawned, not forked**: the node's parent runs threads (API, sweeper) whose locks a fork
  would copy held; a spawned receiver starts clean and makes its own database engine, broker
  client and TLS context, through ``factory`` (a picklable callable that builds the SCP).
- **The caps stay global**: every process counts its connections in one
  :class:`~dicom_io.net.hosts.ConnectionCounts` made before they start, checked at accept
  (per host) and at the association request (all associations).
- A receiver that dies is started again (its counts given back) and logged; :meth:`stop`
  sends SIGTERM: each process stops accepting and lets its C-STOREs finish.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from types import TracebackType
from typing import Any, Self

from dicom_io.net.hosts import ConnectionCounts
from dicom_io.net.scp import StorageSCP

logger = logging.getLogger(__name__)

_CONTEXT: Any = multiprocessing.get_context("spawn")
START_TIMEOUT = 120.0  # s for a receiver to import and build its SCP
MAX_PROCESSES = 8


def default_processes() -> int:
    """The usable cores, at most :data:`MAX_PROCESSES` (ten associations do not need more)."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_PROCESSES))


def listen(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A TCP socket bound and listening, as pynetdicom's server makes it (SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ReceiverProcesses:
    """``processes`` receiver processes, each serving ``factory()`` on one shared port.

    ``factory`` runs in each receiver (so it must be picklable: a module-level function or a
    :func:`functools.partial` of one) and once in the parent, whose SCP only tells the host,
    port and spool, and prepares the spool before any receiver starts.
    """

    def __init__(
        self, factory: Callable[[], StorageSCP], processes: int, stop_timeout: float = 10.0
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.factory = factory
        self.processes = processes
        self.stop_timeout = stop_timeout
        self.restarts = 0
        self._listening: socket.socket | None = None
        self._counts: ConnectionCounts | None = None
        self._children: list[Any] = []
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._listening.getsockname()[1]) if self._listening is not None else 0

    @property
    def is_running(self) -> bool:
        return self._listening is not None

    @property
    def counts(self) -> ConnectionCounts | None:
        """The connections held, across the receivers (None until started)."""
        return self._counts

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self._children if child is not None]

    def start(self) -> None:
        """Bind, start the receivers, and return once every one of them accepts."""
        if self._listening is not None:
            raise RuntimeError("the receivers are already running")
        template = self.factory()
        template.prepare()
        self._listening = listen(template.host, template.port)
        self._counts = ConnectionCounts(self.processes, _CONTEXT)
        self._stopping.clear()
        self._children = [None] * self.processes
        try:
            for row in range(self.processes):
                self._spawn(row)
        except BaseException:
            self.stop()
            raise
        self._monitor = threading.Thread(target=self._watch, name="receivers", daemon=True)
        self._monitor.start()
        logger.info(
            "%d receiver processes on port %d",
            self.processes,
            self.port,
            extra={"event": "dicom.scp.processes", "processes": self.processes, "port": self.port},
        )

    def _spawn(self, row: int) -> None:
        """Start receiver ``row`` (listed at once, so that :meth:`stop` sees it) and wait until
        it accepts."""
        ready = _CONTEXT.Event()
        child = _CONTEXT.Process(
            target=_receive,
            args=(self.factory, self._listening, self._counts, row, ready, self.stop_timeout),
            name=f"rascore-receiver-{row}",
        )
        child.start()
        self._children[row] = child
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.2) and not self._stopping.is_set():
            if not child.is_alive():
                raise RuntimeError(f"receiver process {row} exited with {child.exitcode}")
            if time.monotonic() > deadline:
                child.kill()
                raise RuntimeError(f"receiver process {row} did not start")

    def _watch(self) -> None:
        """Start again a receiver that died (its connections' counts given back)."""
        while not self._stopping.is_set():
            wait([child.sentinel for child in self._children if child], timeout=1.0)
            for row, child in enumerate(self._children):
                if child is None or child.is_alive() or self._stopping.is_set():
                    continue
                logger.error(
                    "receiver process %d (pid %s) exited with %s; starting it again",
                    row,
                    child.pid,
                    child.exitcode,
                    extra={"event": "dicom.scp.process_died", "pid": child.pid,
                           "code": child.exitcode},
                )  # fmt: skip
                assert self._counts is not None
                self._counts.forget_process(row)
                self.restarts += 1
                try:
                    self._spawn(row)
                except Exception as exc:  # tried again at the next round
                    logger.error("receiver process could not start", extra={"error": str(exc)})

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM to every receiver: each stops accepting, finishes its C-STOREs (up to
        ``stop_timeout``), and exits; one that does not is killed."""
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(5)
        children = [child for child in self._children if child is not None]
        for child in children:
            if child.is_alive():
                child.terminate()
        for child in children:
            child.join((timeout or self.stop_timeout) + 5)
            if child.is_alive():
                child.kill()
                child.join()
        self._children, self._monitor = [], None
        if self._listening is not None:
            self._listening.close()
            self._listening = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _receive(
    factory: Callable[[], StorageSCP],
    listening: socket.socket,
    counts: ConnectionCounts,
    row: int,
    ready: Any,
    stop_timeout: float,
) -> None:
    """A receiver process: serve until SIGTERM, or until the parent is gone."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops us in order
    parent = os.getppid()
    scp = factory()
    scp.serve(listening, counts.for_process(row))
    ready.set()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            break
    scp.stop(stop_timeout)
